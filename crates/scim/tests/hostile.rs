//! The client against hostile or failing servers (wiremock on loopback): redirects to other
//! hosts, oversized answers, a `Retry-After` of days, tokens that expire during a backoff, and
//! bad answers to targeted reads. Retry waits are recorded, not slept ([`Waits::recording`]);
//! the servers whose tokens expire read the same virtual clock (the wall clock plus the waits
//! skipped), as does the client when it judges a refused token's age.
#![allow(clippy::unwrap_used)]

use scimsync_core::plan::UserAttributes;
use scimsync_core::ports::Lookup;
use scimsync_core::ports::Target as _;
use scimsync_core::retry::Waits;
use scimsync_core::{TargetGroupId, TargetUserId};
use scimsync_scim::{Auth, ClientAuthMethod, Dialect, ScimClient, ScimConfig, ScimError};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn token_body(token: &str) -> Value {
    json!({"access_token": token, "token_type": "Bearer"})
}

fn user(id: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id,
           "userName": "a@example.com", "active": true})
}

fn config(scim: &MockServer, token: &MockServer) -> ScimConfig {
    ScimConfig {
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_secs(5),
        max_attempts: 5,
        ..ScimConfig::new(
            url::Url::parse(&format!("{}/scim/v2", scim.uri())).unwrap(),
            Auth::ClientCredentials {
                token_url: url::Url::parse(&format!("{}/oauth2/token", token.uri())).unwrap(),
                client_id: "consumer-key".into(),
                client_secret: SecretString::from("hostile-test-secret".to_owned()),
                method: ClientAuthMethod::Form,
            },
            Dialect::Generic,
        )
    }
}

async fn elsewhere() -> (MockServer, String) {
    let other = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("stolen")))
        .mount(&other)
        .await;
    // Another host name for the same loopback address.
    let uri = other.uri().replace("127.0.0.1", "localhost");
    (other, uri)
}

#[tokio::test]
async fn the_token_endpoint_is_never_redirected() {
    let server = MockServer::start().await;
    let (other, other_uri) = elsewhere().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", format!("{other_uri}/steal")),
        )
        .mount(&server)
        .await;
    let client = ScimClient::new(config(&server, &server)).unwrap();
    let err = client.get_user(&TargetUserId::new("u1")).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("redirect (307) to localhost"), "{text}");
    assert!(!text.contains("hostile-test-secret"));
    assert!(
        other.received_requests().await.unwrap().is_empty(),
        "the client secret went nowhere else"
    );
    let tries = server.received_requests().await.unwrap().len();
    assert_eq!(tries, 1, "a redirect is not retried");
}

#[tokio::test]
async fn a_create_redirected_to_another_host_is_not_sent_there() {
    let server = MockServer::start().await;
    let (other, other_uri) = elsewhere().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("t")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/scim/v2/Users"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", format!("{other_uri}/Users")),
        )
        .mount(&server)
        .await;
    let client = ScimClient::new(config(&server, &server)).unwrap();
    let attrs = UserAttributes {
        user_name: "ada@example.com".into(),
        external_id: "DU1".into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        display_name: None,
        nick_name: None,
        title: None,
        email: "ada@example.com".into(),
        work_phone: None,
        federation_id: None,
        enterprise: Default::default(),
        profile: None,
        permission_sets: Vec::new(),
        role: None,
    };
    let err = client.create_user(&attrs).await.unwrap_err();
    assert!(
        matches!(&err, ScimError::Redirect { status: 307, to_host, .. } if to_host == "localhost"),
        "{err}"
    );
    assert!(other.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_oversized_answer_is_an_error_naming_the_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("t")))
        .mount(&server)
        .await;
    let mut big = user("u1");
    big["displayName"] = Value::String("x".repeat(3 * 1024 * 1024));
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/u1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(big))
        .mount(&server)
        .await;
    let client = ScimClient::new(ScimConfig {
        max_body_bytes: 1024 * 1024,
        ..config(&server, &server)
    })
    .unwrap();
    let err = client.get_user(&TargetUserId::new("u1")).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ScimError::TooLarge { .. }), "{text}");
    assert!(
        text.contains("/scim/v2/Users/u1") && text.contains("larger than 1048576 bytes"),
        "{text}"
    );
}

#[tokio::test]
async fn a_retry_after_of_days_is_not_waited_for() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("t")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/u1"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "999999"))
        .mount(&server)
        .await;
    let waits = Waits::recording();
    let client = ScimClient::new(config(&server, &server))
        .unwrap()
        .with_waits(waits.clone());
    let err = client.get_user(&TargetUserId::new("u1")).await.unwrap_err();
    assert_eq!(waits.asked(), [], "not waited for, not retried");
    assert_eq!(client.stats().retries, 0);
    assert!(matches!(err, ScimError::RateLimited { .. }), "{err}");
    assert!(err.to_string().contains("Retry-After 999999s"), "{err}");
}

/// The virtual clock the client's recorded waits move on: the wall clock plus the waits skipped.
#[derive(Clone)]
struct Clock(Waits);

impl Clock {
    fn now(&self) -> Instant {
        Instant::now() + self.0.skipped()
    }
}

/// Issues `tok-0`, `tok-1`, … and remembers when (on the virtual clock).
struct Issuer(Mutex<Vec<Instant>>, Clock);

impl Respond for Issuer {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut issued = self.0.lock().unwrap();
        issued.push(self.1.now());
        ResponseTemplate::new(200).set_body_json(token_body(&format!("tok-{}", issued.len() - 1)))
    }
}

/// Refuses tokens older than `lifetime` with 401; answers 503 (Retry-After: `pause`) to the
/// requests whose numbers `fail` holds; else the user.
struct Expiring {
    issued: std::sync::Arc<Issuer>,
    lifetime: Duration,
    pause: u64,
    fail: fn(usize) -> bool,
    seen: AtomicUsize,
}

impl Respond for Expiring {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let which: usize = auth
            .trim_start_matches("Bearer tok-")
            .parse()
            .unwrap_or(usize::MAX);
        let issued = self.issued.0.lock().unwrap().get(which).copied();
        let now = self.issued.1.now();
        if issued.is_none_or(|at| now.duration_since(at) > self.lifetime) {
            return ResponseTemplate::new(401).set_body_json(json!({"detail": "expired"}));
        }
        if (self.fail)(n) {
            return ResponseTemplate::new(503).insert_header("retry-after", self.pause.to_string());
        }
        ResponseTemplate::new(200).set_body_json(user("u1"))
    }
}

async fn expiring(
    lifetime: Duration,
    pause: u64,
    fail: fn(usize) -> bool,
    waits: &Waits,
) -> MockServer {
    let server = MockServer::start().await;
    let issuer = std::sync::Arc::new(Issuer(Mutex::new(Vec::new()), Clock(waits.clone())));
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ArcIssuer(std::sync::Arc::clone(&issuer)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/u1"))
        .respond_with(Expiring {
            issued: issuer,
            lifetime,
            pause,
            fail,
            seen: AtomicUsize::new(0),
        })
        .mount(&server)
        .await;
    server
}

struct ArcIssuer(std::sync::Arc<Issuer>);

impl Respond for ArcIssuer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.0.respond(req)
    }
}

#[tokio::test]
async fn a_token_that_expired_during_a_backoff_is_replaced_not_taken_for_a_permission_problem() {
    // Tokens live 2.5 s. The first token is used, then expires; its replacement meets a 503
    // with Retry-After: 3 and has expired by the retry. That 401 is an expiry: a third token
    // is fetched and the read succeeds.
    let waits = Waits::recording();
    let server = expiring(Duration::from_millis(2_500), 3, |n| n == 2, &waits).await;
    let client = ScimClient::new(config(&server, &server))
        .unwrap()
        .with_waits(waits.clone());
    client.get_user(&TargetUserId::new("u1")).await.unwrap();
    waits.pass(Duration::from_millis(2_600));
    let user = client.get_user(&TargetUserId::new("u1")).await;
    assert!(user.is_ok(), "{:?}", user.err().map(|e| e.to_string()));
    assert_eq!(client.stats().tokens_fetched, 3);
    assert_eq!(
        waits.asked(),
        [Duration::from_secs(3)],
        "the 503's Retry-After"
    );
}

#[tokio::test]
async fn tokens_that_expire_faster_than_requests_can_use_them_are_named_with_their_lifetime() {
    // Tokens live 2.1 s and every request meets a 503 with Retry-After: 3 first.
    let waits = Waits::recording();
    let server = expiring(Duration::from_millis(2_100), 3, |n| n % 2 == 0, &waits).await;
    let client = ScimClient::new(ScimConfig {
        max_attempts: 10,
        ..config(&server, &server)
    })
    .unwrap()
    .with_waits(waits.clone());
    let err = client.get_user(&TargetUserId::new("u1")).await.unwrap_err();
    // A 503 before each of the four tokens' 401s: four waits of its Retry-After, and the
    // fourth try ends the request with six tries unused.
    assert_eq!(waits.asked(), [Duration::from_secs(3); 4]);
    let text = err.to_string();
    assert!(
        matches!(err, ScimError::TokensExpireTooFast { refreshes: 3, .. }),
        "{text}"
    );
    assert!(
        text.contains("refused access tokens 3.") && text.contains("expire faster"),
        "{text}"
    );
    assert!(!text.contains("Manage Users"), "{text}");
}

#[tokio::test]
async fn ids_are_percent_encoded_in_paths() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("t")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"detail": "no"})))
        .mount(&server)
        .await;
    let client = ScimClient::new(config(&server, &server)).unwrap();
    for id in ["../Groups/x?y#z", "a b"] {
        let _ = client.get_user(&TargetUserId::new(id)).await;
    }
    let err = client.get_user(&TargetUserId::new("..")).await.unwrap_err();
    assert!(err.to_string().contains("cannot name a resource"), "{err}");
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "GET")
        .map(|r| {
            format!(
                "{}{}",
                r.url.path(),
                r.url.query().map(|q| format!("?{q}")).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/scim/v2/Users/..%2FGroups%2Fx%3Fy%23z",
            "/scim/v2/Users/a%20b"
        ]
    );
}

/// A client against a server whose `GET /scim/v2/Users` (any query) answers `list` and whose
/// `GET /scim/v2/Users/u1` and `/Groups/g1` answer `one_user` and `one_group`.
async fn answering(list: Value, one_user: Value, one_group: Value) -> (MockServer, ScimClient) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("t")))
        .mount(&server)
        .await;
    for (p, body) in [
        ("/scim/v2/Users", list.clone()),
        ("/scim/v2/Groups", list),
        ("/scim/v2/Users/u1", one_user),
        ("/scim/v2/Groups/g1", one_group),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    let client = ScimClient::new(config(&server, &server)).unwrap();
    (server, client)
}

fn listing(resources: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
           "totalResults": 1, "Resources": resources})
}

#[tokio::test]
async fn bad_answers_to_targeted_reads_are_errors_naming_the_object_and_field() {
    let by_id = |ids: &[&str]| Lookup {
        user_ids: ids.iter().map(|i| TargetUserId::new(*i)).collect(),
        ..Lookup::default()
    };
    let mut wrong_active = user("u1");
    wrong_active["active"] = json!(7);
    let cases: Vec<(Value, Value, Value, Lookup, &[&str])> = vec![
        // The filtered answer: not a list answer, Resources of the wrong type, a user
        // without an id, an attribute of the wrong type, a totalResults that is no number.
        (
            json!([1, 2]),
            user("u1"),
            json!({}),
            by_id(&["u1"]),
            &["reading users by id", "must be a JSON object, not a list"],
        ),
        (
            json!({"totalResults": 1, "Resources": "u1"}),
            user("u1"),
            json!({}),
            by_id(&["u1"]),
            &["Resources is a string, not a list"],
        ),
        (
            listing(json!([{"userName": "a@example.com"}])),
            user("u1"),
            json!({}),
            by_id(&["u1"]),
            &["Resources[0]", "id is missing"],
        ),
        (
            listing(json!([wrong_active])),
            user("u1"),
            json!({}),
            by_id(&["u1"]),
            &["Resources[0]", "user u1: active is 7, not a boolean"],
        ),
        (
            json!({"totalResults": "many", "Resources": []}),
            user("u1"),
            json!({}),
            by_id(&["u1"]),
            &["totalResults is \"many\", not a number"],
        ),
        // An id the filter did not answer, read by id: another user, or no user at all.
        (
            listing(json!([])),
            user("u2"),
            json!({}),
            by_id(&["u1"]),
            &["reading user u1", "answered user u2 instead"],
        ),
        (
            listing(json!([])),
            json!("u1"),
            json!({}),
            by_id(&["u1"]),
            &["reading user u1", "id is missing"],
        ),
        // Groups: a member list of the wrong shape is read as no members, but a group
        // without a displayName, or something that is not a group, is an error.
        (
            listing(json!([{"id": "g1"}])),
            user("u1"),
            json!({}),
            Lookup {
                group_ids: vec![TargetGroupId::new("g1")],
                ..Lookup::default()
            },
            &[
                "reading groups by id",
                "Resources[0]",
                "group g1: displayName is missing",
            ],
        ),
        (
            listing(json!([])),
            user("u1"),
            json!([{"id": "g1"}]),
            Lookup {
                group_ids: vec![TargetGroupId::new("g1")],
                ..Lookup::default()
            },
            &["reading group g1", "not an object"],
        ),
    ];
    for (i, (list, one_user, one_group, lookup, words)) in cases.into_iter().enumerate() {
        let (_server, client) = answering(list, one_user, one_group).await;
        let err = client.read_some(&lookup).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ScimError::InvalidResponse { .. }),
            "case {i}: {err:?}"
        );
        for w in words {
            assert!(text.contains(w), "case {i}: {w:?} not in {text}");
        }
    }
}
