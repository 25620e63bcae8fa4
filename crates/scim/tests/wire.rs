//! More wire behaviour, checked with wiremock: `If-Match` from the ETag the server sent and 204
//! answers in the generic dialect, one token refresh on 401 with the new token on the retry,
//! `Retry-After` on 429, Salesforce's 403 `REQUEST_LIMIT_EXCEEDED` retried but a plain 403 not,
//! `Sforce-Limit-Info` in the stats, a static bearer token, and no secret or token in logs or
//! errors when the token endpoint fails or answers something unparsable.
#![allow(clippy::unwrap_used)]

use scimsync_core::TargetUserId;
use scimsync_core::plan::UserChanges;
use scimsync_core::ports::{Classify, Disposition, ReadScope, Target};
use scimsync_core::retry::Waits;
use scimsync_scim::{Auth, ClientAuthMethod, Dialect, ScimClient, ScimConfig, ScimError};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "consumer-secret-never-logged";
const TOKEN: &str = "00Dxx!first-token-never-logged";
const TOKEN2: &str = "00Dxx!second-token-never-logged";

fn token_body(token: &str) -> Value {
    json!({"access_token": token, "token_type": "Bearer", "scope": "api",
           "instance_url": "https://x", "id": "https://x/id/00D/005", "issued_at": "1700000000000"})
}

fn user(id: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id,
           "userName": "a@example.com", "active": true})
}

async fn with_token(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(TOKEN)))
        .mount(server)
        .await;
}

fn config(server: &MockServer, dialect: Dialect, auth: Auth) -> ScimConfig {
    ScimConfig {
        backoff_base: Duration::from_millis(5),
        max_attempts: 3,
        ..ScimConfig::new(
            url::Url::parse(&format!("{}/scim/v2", server.uri())).unwrap(),
            auth,
            dialect,
        )
    }
}

fn credentials(server: &MockServer) -> Auth {
    Auth::ClientCredentials {
        token_url: url::Url::parse(&format!("{}/oauth2/token", server.uri())).unwrap(),
        client_id: "consumer-key".into(),
        client_secret: SecretString::from(SECRET.to_owned()),
        method: ClientAuthMethod::Form,
    }
}

fn client(server: &MockServer, dialect: Dialect) -> ScimClient {
    ScimClient::new(config(server, dialect, credentials(server))).unwrap()
}

/// A client whose retry waits are recorded in `waits` and not slept.
fn recorded(server: &MockServer, dialect: Dialect, waits: &Waits) -> ScimClient {
    client(server, dialect).with_waits(waits.clone())
}

/// Asserts `waits` are the policy's backoff of `base` (5 ms in these tests): each the n-th
/// between half and all of base·2ⁿ⁻¹.
fn assert_backoff(waits: &[Duration], base: Duration) {
    for (n, wait) in waits.iter().enumerate() {
        let whole = base * 2u32.pow(n as u32);
        assert!(
            (whole / 2..=whole).contains(wait),
            "wait {}: {wait:?} not within {:?}..={whole:?} ({waits:?})",
            n + 1,
            whole / 2
        );
    }
}

async fn requests(server: &MockServer, m: &str, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .collect()
}

#[tokio::test]
async fn generic_patch_sends_if_match_and_accepts_204() {
    let server = MockServer::start().await;
    with_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/U1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "W/\"7\"")
                .set_body_json(user("U1")),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/scim/v2/Users/U1"))
        .respond_with(ResponseTemplate::new(204).insert_header("ETag", "W/\"8\""))
        .mount(&server)
        .await;
    let c = client(&server, Dialect::Generic);
    let id = TargetUserId::from("U1");
    c.get_user(&id).await.unwrap();
    let change = UserChanges {
        active: Some(false),
        ..UserChanges::default()
    };
    c.update_user(&id, &change).await.unwrap();
    c.update_user(&id, &change).await.unwrap();
    let patches = requests(&server, "PATCH", "/scim/v2/Users/U1").await;
    let tags: Vec<_> = patches
        .iter()
        .map(|r| {
            r.headers
                .get("if-match")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        tags,
        vec![Some("W/\"7\"".to_owned()), Some("W/\"8\"".to_owned())],
        "the ETag read, then the one the 204 answer carried"
    );
    let body: Value = serde_json::from_slice(&patches[0].body).unwrap();
    assert_eq!(
        body,
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": "active", "value": false}]})
    );
    assert_eq!(
        patches[0].headers.get("authorization").unwrap(),
        &format!("Bearer {TOKEN}")
    );
    assert!(
        patches[0]
            .headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("json")
    );
}

#[tokio::test]
async fn salesforce_sends_no_if_match_and_deactivates_by_patch() {
    let server = MockServer::start().await;
    with_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/U1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "W/\"7\"")
                .set_body_json(user("U1")),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user("U1")))
        .mount(&server)
        .await;
    let c = client(&server, Dialect::Salesforce);
    let id = TargetUserId::from("U1");
    c.get_user(&id).await.unwrap();
    c.update_user(
        &id,
        &UserChanges {
            active: Some(false),
            ..UserChanges::default()
        },
    )
    .await
    .unwrap();
    let patches = requests(&server, "PATCH", "/scim/v2/Users/U1").await;
    assert_eq!(patches.len(), 1);
    let body: Value = serde_json::from_slice(&patches[0].body).unwrap();
    assert_eq!(
        body,
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "value": {"active": false}}]})
    );
    let all = server.received_requests().await.unwrap();
    assert!(all.iter().all(|r| r.method.as_str() != "DELETE"));
}

#[tokio::test]
async fn a_401_fetches_one_new_token_and_retries_with_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(TOKEN)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(TOKEN2)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!([{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/U1"))
        .and(header("authorization", format!("Bearer {TOKEN2}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(user("U1")))
        .mount(&server)
        .await;
    let c = Arc::new(client(&server, Dialect::Salesforce));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.get_user(&TargetUserId::from("U1")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(requests(&server, "POST", "/oauth2/token").await.len(), 2);
    assert_eq!(c.stats().tokens_fetched, 2);
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let server = MockServer::start().await;
    with_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/U1"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "2"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/U1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user("U1")))
        .mount(&server)
        .await;
    let waits = Waits::recording();
    let c = recorded(&server, Dialect::Generic, &waits);
    c.get_user(&TargetUserId::from("U1")).await.unwrap();
    assert_eq!(
        waits.asked(),
        [Duration::from_secs(2)],
        "the server's wait, not the 5 ms backoff"
    );
    assert_eq!(c.stats().rate_limited, 1);
    assert_eq!(c.stats().retries, 1);
}

#[tokio::test]
async fn a_403_limit_is_retried_but_a_403_for_scope_is_not() {
    let server = MockServer::start().await;
    with_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/LIMIT"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!([
            {"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}
        ])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/LIMIT"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Sforce-Limit-Info", "api-usage=25/15000")
                .set_body_json(user("LIMIT")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/SCOPE"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!([
            {"errorCode": "INSUFFICIENT_ACCESS", "message": "insufficient access rights"}
        ])))
        .mount(&server)
        .await;
    let c = client(&server, Dialect::Salesforce);
    c.get_user(&TargetUserId::from("LIMIT")).await.unwrap();
    assert_eq!(c.stats().api_usage, Some((25, 15000)));
    let err = c.get_user(&TargetUserId::from("SCOPE")).await.unwrap_err();
    assert!(matches!(err, ScimError::Forbidden { .. }), "{err:?}");
    assert!(err.to_string().contains("(api)"), "{err}");
    assert_eq!(err.disposition(), Disposition::Fatal);
    assert_eq!(
        requests(&server, "GET", "/scim/v2/Users/SCOPE").await.len(),
        1
    );
    assert_eq!(
        requests(&server, "GET", "/scim/v2/Users/LIMIT").await.len(),
        2
    );
}

#[tokio::test]
async fn a_static_bearer_token_is_sent_as_is_and_never_shown() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/U1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user("U1")))
        .mount(&server)
        .await;
    let c = ScimClient::new(config(
        &server,
        Dialect::Generic,
        Auth::Bearer(SecretString::from(TOKEN.to_owned())),
    ))
    .unwrap();
    c.get_user(&TargetUserId::from("U1")).await.unwrap();
    let got = requests(&server, "GET", "/scim/v2/Users/U1").await;
    assert_eq!(
        got[0].headers.get("authorization").unwrap(),
        &format!("Bearer {TOKEN}")
    );
    assert!(requests(&server, "POST", "/oauth2/token").await.is_empty());
    assert!(!format!("{c:?}").contains(TOKEN));
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
async fn failing_and_unparsable_token_answers_leak_nothing() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A refused client.
    let refused = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_client", "error_description": "invalid client credentials"}),
        ))
        .mount(&refused)
        .await;
    let mut errors = vec![
        client(&refused, Dialect::Salesforce)
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err(),
    ];

    // A 200 whose body does not parse as a token answer but carries the token.
    let odd = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": TOKEN, "token_type": 42})),
        )
        .mount(&odd)
        .await;
    errors.push(
        client(&odd, Dialect::Salesforce)
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err(),
    );

    // An HTML error page from a proxy.
    let html = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .mount(&html)
        .await;
    errors.push(
        client(&html, Dialect::Generic)
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err(),
    );

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "the capture works");
    assert_eq!(
        errors[0].disposition(),
        Disposition::Fatal,
        "{:?}",
        errors[0]
    );
    assert_eq!(
        errors[1].disposition(),
        Disposition::Fatal,
        "{:?}",
        errors[1]
    );
    assert!(
        matches!(errors[2].disposition(), Disposition::Retryable { .. }),
        "a proxy's 502 at the token endpoint passes: {:?}",
        errors[2]
    );
    assert!(
        errors[0].to_string().contains("Consumer Key"),
        "{}",
        errors[0]
    );
    for secret in [SECRET, TOKEN] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
        for e in &errors {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

#[tokio::test]
async fn the_token_endpoints_passing_failures_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>maintenance</html>"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    with_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/U1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user("U1")))
        .mount(&server)
        .await;
    let waits = Waits::recording();
    let c = recorded(&server, Dialect::Salesforce, &waits);
    c.get_user(&TargetUserId::from("U1")).await.unwrap();
    assert_eq!(requests(&server, "POST", "/oauth2/token").await.len(), 3);
    assert_eq!(c.stats().tokens_fetched, 1);
    assert_eq!(c.stats().retries, 2);
    // The backoff's own waits: a `Retry-After: 0` does not make the retry immediate.
    assert_eq!(waits.asked().len(), 2, "{:?}", waits.asked());
    assert_backoff(&waits.asked(), Duration::from_millis(5));

    // An endpoint that is down for good ends in a retryable error, not a fatal one.
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let waits = Waits::recording();
    let err = recorded(&down, Dialect::Salesforce, &waits)
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
    assert_eq!(requests(&down, "POST", "/oauth2/token").await.len(), 3);
    assert_eq!(waits.asked().len(), 2, "three tries, two waits");
    assert_backoff(&waits.asked(), Duration::from_millis(5));
    // Unreachable: a transport failure, also retryable.
    let gone = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let c = ScimClient::new(config(
        &down,
        Dialect::Salesforce,
        Auth::ClientCredentials {
            token_url: url::Url::parse(&format!("{gone}/oauth2/token")).unwrap(),
            client_id: "consumer-key".into(),
            client_secret: SecretString::from(SECRET.to_owned()),
            method: ClientAuthMethod::Basic,
        },
    ))
    .unwrap();
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
    assert!(!format!("{err} {err:?}").contains(SECRET));
}

/// A retry is logged inside the request's span: the method, the path without the query (a
/// filter names a person), the try and the status answered.
#[tokio::test]
async fn a_retry_is_logged_in_the_requests_span_without_the_query() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = MockServer::start().await;
    with_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users"))
        .respond_with(ResponseTemplate::new(503))
        // The first answers the probe with `count` (one try, then paging without it).
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 0, "Resources": []
        })))
        .mount(&server)
        .await;
    let c = client(&server, Dialect::Generic);
    c.filter_users("userName", "jane.private@example.com")
        .await
        .unwrap();
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let retry = logs
        .lines()
        .find(|l| l.contains("Retrying."))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        retry.contains("request{method=GET path=/scim/v2/Users attempt=1 status=503}"),
        "{retry}"
    );
    assert!(!logs.contains("jane.private"), "{logs}");
}
