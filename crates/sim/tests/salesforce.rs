//! The Salesforce emulator keeps Salesforce's rules: plain HTTP against a running emulator.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use scimsync_sim::salesforce::{
    BurstKind, ClientKind, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SalesforceConfig, SalesforceSim,
};
use serde_json::{Value, json};

struct Org {
    sim: SalesforceSim,
    http: reqwest::Client,
    token: String,
}

async fn token_for(
    sim: &SalesforceSim,
    http: &reqwest::Client,
    id: &str,
    secret: &str,
) -> (StatusCode, Value) {
    let r = http
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn org(config: SalesforceConfig) -> Org {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = SalesforceSim::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let (status, body) = token_for(&sim, &http, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    Org { sim, http, token }
}

impl Org {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn patch(&self, path: &str, ops: Value) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::PATCH,
            path,
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})),
        )
        .await
    }
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    fn id(&self, name: &str) -> String {
        self.sim.catalogue_id(name).unwrap()
    }
    async fn create(&self, user_name: &str, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"type": "work", "primary": true, "value": user_name}],
            "entitlements": [{"value": self.id("Standard User")}],
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        self.post("/Users", body).await
    }
}

#[tokio::test]
async fn token_endpoint_answers_like_salesforce_for_each_kind_of_client() {
    let config = SalesforceConfig::demo()
        .with_client("norunas", "s1", ClientKind::NoRunAsUser)
        .with_client("noapi", "s2", ClientKind::NoApiScope)
        .with_client("nomanage", "s3", ClientKind::NoManageUsers);
    let o = org(config).await;
    let (s, b) = token_for(&o.sim, &o.http, DEMO_CLIENT_ID, "wrong").await;
    assert_eq!(
        (s.as_u16(), b["error"].as_str()),
        (400, Some("invalid_client"))
    );
    let (s, b) = token_for(&o.sim, &o.http, "unknown", "x").await;
    assert_eq!(
        (s.as_u16(), b["error"].as_str()),
        (400, Some("invalid_client_id"))
    );
    let (s, b) = token_for(&o.sim, &o.http, "norunas", "s1").await;
    assert_eq!(s, 400);
    assert_eq!(b["error_description"], "no client credentials user enabled");
    let r = o
        .http
        .post(o.sim.login_domain_token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["error_description"],
        "request not supported on this domain"
    );

    // Basic authentication works too; no expires_in, no refresh token.
    let r = o
        .http
        .post(o.sim.token_url())
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert!(
        b["access_token"].is_string()
            && b.get("expires_in").is_none()
            && b.get("refresh_token").is_none(),
        "{b}"
    );
    assert!(b["issued_at"].is_string());

    for (id, secret, status) in [("noapi", "s2", 403), ("nomanage", "s3", 401)] {
        let (_, b) = token_for(&o.sim, &o.http, id, secret).await;
        let t = b["access_token"].as_str().unwrap();
        let r = o
            .http
            .get(format!("{}/Users", o.sim.base_url()))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{id}");
    }
    o.sim.knobs().revoke_tokens();
    let (s, b) = o.get("/Users").await;
    assert_eq!(s, 401);
    assert_eq!(
        b["detail"],
        "INVALID_SESSION_ID:Session expired or invalid;"
    );
    assert_eq!(
        b["status"], 401,
        "status is a number in Salesforce's errors"
    );
}

#[tokio::test]
async fn users_follow_salesforces_rules() {
    let o = org(SalesforceConfig::demo()).await;
    let (s, u) = o.create("Ada.Lovelace@Example.com", json!({})).await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(u["userName"], "ada.lovelace@example.com", "lower-cased");
    assert_eq!(
        u["nickName"], "Ada.Lovelace@Example.com",
        "derived from the userName as typed"
    );
    assert_eq!(u["timezone"], "America/Los_Angeles");
    assert!(u["id"].as_str().unwrap().starts_with("005"));

    let (s, e) = o
        .create("ada.lovelace@example.com", json!({"nickName": "other"}))
        .await;
    assert_eq!(s, 409);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .starts_with("DUPLICATE_USERNAME:")
    );

    let (s, e) = o
        .post(
            "/Users",
            json!({"userName": "x@example.com", "emails": [{"value": "x@example.com"}]}),
        )
        .await;
    assert_eq!(s, 409);
    assert_eq!(
        e["detail"],
        "REQUIRED_FIELD_MISSING:user_must_have_one_entitlement_which_must_be_a_profileid;"
    );

    let long = format!("{}@example.com", "a".repeat(30));
    let (s, e) = o.create(&long, json!({})).await;
    assert_eq!(s, 400, "a derived nickName over 40 fails: {e}");
    assert!(e["detail"].as_str().unwrap().contains("max length=40"));
    let (s, _) = o.create(&long, json!({"nickName": "short"})).await;
    assert_eq!(s, 201, "a mapped nickName lets a long userName through");

    let (s, _) = o.create("not-an-email", json!({"nickName": "n1"})).await;
    assert_eq!(s, 400);

    let (s, e) = o
        .create("loc@example.com", json!({"locale": "fr_FR"}))
        .await;
    assert_eq!(s, 400, "locale is not writable: {e}");

    let id = u["id"].as_str().unwrap().to_owned();
    let (s, e) = o
        .call(reqwest::Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(s, 405, "{e}");
    let (s, _) = o.get(&format!("/Users/{id}")).await;
    assert_eq!(s, 200, "still there");
}

#[tokio::test]
async fn email_changes_wait_for_verification_and_each_update_sends_another_email() {
    let o = org(SalesforceConfig::demo()).await;
    let (_, u) = o.create("ada@example.com", json!({})).await;
    let id = u["id"].as_str().unwrap().to_owned();
    let change = json!([{"op": "replace", "value": {"emails": [{"type": "work", "primary": true, "value": "ada@new.example.com"}]}}]);
    let (s, u) = o.patch(&format!("/Users/{id}"), change.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(
        u["emails"][0]["value"], "ada@example.com",
        "held until verified"
    );
    assert_eq!(o.sim.inspect().verification_emails_sent(), 1);
    o.patch(&format!("/Users/{id}"), change).await;
    assert_eq!(
        o.sim.inspect().verification_emails_sent(),
        2,
        "every update sends another"
    );
    assert!(o.sim.knobs().verify_email(&id));
    let (_, u) = o.get(&format!("/Users/{id}")).await;
    assert_eq!(u["emails"][0]["value"], "ada@new.example.com");
}

#[tokio::test]
async fn profiles_phones_and_nicknames_on_update() {
    let o = org(SalesforceConfig::demo()).await;
    let (_, u) = o
        .create(
            "bob@example.com",
            json!({"phoneNumbers": [{"type": "mobile", "value": "+15550001"}]}),
        )
        .await;
    let id = u["id"].as_str().unwrap().to_owned();
    // A work phone is added; the mobile stays.
    let (s, u) = o
        .patch(&format!("/Users/{id}"), json!([{"op": "replace", "value": {"phoneNumbers": [{"type": "work", "value": "+15550002"}]}}]))
        .await;
    assert_eq!(s, 200);
    assert_eq!(u["phoneNumbers"].as_array().unwrap().len(), 2, "{u}");
    let (s, _) = o
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"phoneNumbers": [{"type": "work", "value": "1"}, {"type": "fax", "value": "2"}]}}]),
        )
        .await;
    assert_eq!(s, 400, "one phone per request");
    // Another licence: refused.
    let chatter = o.id("Chatter Free User");
    let (s, e) = o
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"entitlements": [{"value": chatter}]}}]),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .starts_with("FIELD_INTEGRITY_EXCEPTION:")
    );
    // Same licence, with a permission set and a role.
    let (s, u) = o
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {
                "entitlements": [{"value": o.id("System Administrator")}, {"value": o.id("Sales Cloud User")}],
                "roles": [{"value": o.id("CEO")}]
            }}]),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["entitlements"].as_array().unwrap().len(), 2);
    assert_eq!(u["roles"][0]["display"], "CEO");
    // An empty nickName makes Salesforce invent one, afresh each time.
    let (_, a) = o
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"nickName": ""}}]),
        )
        .await;
    let (_, b) = o
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"nickName": ""}}]),
        )
        .await;
    assert_ne!(a["nickName"], b["nickName"]);
}

#[tokio::test]
async fn paging_and_filters() {
    let o = org(SalesforceConfig::demo()).await;
    for i in 0..205 {
        let (s, _) = o
            .create(
                &format!("u{i}@example.com"),
                json!({"externalId": format!("DU{i}")}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let (_, page) = o.get("/Users?startIndex=1&count=500").await;
    assert_eq!(page["itemsPerPage"], 200, "capped at 200");
    assert_eq!(page["totalResults"], 205);
    let (_, page) = o.get("/Users?startIndex=201&count=200").await;
    assert_eq!(page["Resources"].as_array().unwrap().len(), 5);
    let (_, f) = o
        .get("/Users?filter=userName%20eq%20%22U7@EXAMPLE.com%22")
        .await;
    assert_eq!(f["totalResults"], 1, "case-insensitive userName filter");
    let (_, f) = o.get("/Users?filter=externalId%20eq%20%22DU9%22").await;
    assert_eq!(f["Resources"][0]["userName"], "u9@example.com");
    let (s, _) = o.get("/Users?filter=userName%20co%20%22u%22").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn groups_in_salesforces_shape() {
    let o = org(SalesforceConfig::demo()).await;
    let (_, a) = o.create("a@example.com", json!({})).await;
    let a = a["id"].as_str().unwrap().to_owned();
    let (s, g) = o.post("/Groups", json!({"displayName": "Sales"})).await;
    assert_eq!(s, 201);
    let gid = g["id"].as_str().unwrap().to_owned();
    assert!(gid.starts_with("00G"));
    let (s, _) = o
        .post("/Groups", json!({"displayName": "x".repeat(41)}))
        .await;
    assert_eq!(s, 400, "names at most 40");
    let (s, e) = o
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": [{"value": a}]}]),
        )
        .await;
    assert_eq!(s, 400, "the RFC shape is not Salesforce's: {e}");
    let (s, g) = o
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": {"members": [{"value": a}]}}]),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(g["members"][0]["value"], a);
    o.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "remove", "path": "members", "value": {"members": [{"value": a}]}}]),
    )
    .await;
    assert!(
        o.sim
            .inspect()
            .group_by_name("Sales")
            .unwrap()
            .members
            .is_empty()
    );
    // Inactive users are refused as members.
    o.patch(
        &format!("/Users/{a}"),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .await;
    let (s, _) = o
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": {"members": [{"value": a}]}}]),
        )
        .await;
    assert_eq!(s, 400);
    // Renaming.
    let (s, g) = o
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "replace", "value": {"displayName": "Sales EMEA"}}]),
        )
        .await;
    assert_eq!(
        (s.as_u16(), g["displayName"].as_str()),
        (200, Some("Sales EMEA"))
    );
    // Creation refused by the knob.
    o.sim.knobs().set_allow_group_creation(false);
    let (s, _) = o.post("/Groups", json!({"displayName": "Support"})).await;
    assert_eq!(s, 405);
}

#[tokio::test]
async fn catalogue_and_service_provider_config() {
    let o = org(SalesforceConfig::demo()).await;
    let (_, e) = o.get("/Entitlements").await;
    let items = e["Resources"].as_array().unwrap();
    let chatter = items
        .iter()
        .find(|i| i["displayName"] == "Chatter Free User")
        .unwrap();
    assert_eq!(chatter["type"], "Profile");
    assert_eq!(
        chatter["urn:salesforce:schemas:extension:1.0:Entitlement"]["allowsGroups"],
        false
    );
    assert!(items.iter().any(|i| i["type"] == "PermissionSet"));
    let (_, r) = o.get("/Roles").await;
    assert!(r["Resources"][0]["id"].as_str().unwrap().starts_with("00E"));
    for path in ["/ServiceProviderConfigs", "/ServiceProviderConfig"] {
        let (s, c) = o.get(path).await;
        assert_eq!(s, 200);
        assert_eq!(c["filter"]["maxResults"], 200);
    }
}

#[tokio::test]
async fn fault_knobs_and_limits() {
    let o = org(SalesforceConfig::demo()).await;
    o.sim.knobs().fail_next(2, 503);
    assert_eq!(o.get("/Users").await.0, 503);
    assert_eq!(o.get("/Users").await.0, 503);
    assert_eq!(o.get("/Users").await.0, 200);
    o.sim
        .knobs()
        .rate_limit_burst(1, 2, BurstKind::RequestLimitExceeded);
    let r = o
        .http
        .get(format!("{}/Users", o.sim.base_url()))
        .bearer_auth(&o.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["retry-after"], "2");
    let b: Value = r.json().await.unwrap();
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .starts_with("REQUEST_LIMIT_EXCEEDED")
    );
    let r = o
        .http
        .get(format!("{}/Users", o.sim.base_url()))
        .bearer_auth(&o.token)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["sforce-limit-info"]
            .to_str()
            .unwrap()
            .starts_with("api-usage=")
    );
    o.sim.knobs().enforce_rps(Some(2));
    let mut limited = 0;
    for _ in 0..6 {
        if o.get("/Users").await.0 == 403 {
            limited += 1;
        }
    }
    assert!(limited >= 3, "{limited}");
    assert_eq!(o.sim.inspect().rate_rejections().len(), limited);
    o.sim.knobs().enforce_rps(None);
    o.sim.knobs().drop_next(1);
    let dropped = match o
        .http
        .get(format!("{}/Users", o.sim.base_url()))
        .bearer_auth(&o.token)
        .send()
        .await
    {
        Err(_) => true,
        Ok(r) => r.text().await.is_err(),
    };
    assert!(
        dropped,
        "the connection dropped without a complete response"
    );
    assert_eq!(o.get("/Users").await.0, 200);
}

#[tokio::test]
async fn generic_mode_speaks_rfc_7644_with_etags() {
    let o = org(SalesforceConfig::generic()).await;
    let (s, u) = o
        .post(
            "/Users",
            json!({"userName": "g@example.com", "emails": [{"value": "g@example.com"}]}),
        )
        .await;
    assert_eq!(s, 201, "no profile rule in generic mode: {u}");
    let uid = u["id"].as_str().unwrap().to_owned();
    let (_, g) = o.post("/Groups", json!({"displayName": "Ops"})).await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let r = o
        .http
        .patch(format!("{}/Groups/{gid}", o.sim.base_url()))
        .bearer_auth(&o.token)
        .json(&json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = o
        .http
        .patch(format!("{}/Groups/{gid}", o.sim.base_url()))
        .bearer_auth(&o.token)
        .header("if-match", "W/\"999\"")
        .json(&json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = o
        .http
        .patch(format!("{}/Groups/{gid}", o.sim.base_url()))
        .bearer_auth(&o.token)
        .header("if-match", etag)
        .json(&json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, e) = o.post("/Users", json!({"userName": "g@example.com"})).await;
    assert_eq!(s, 409);
    assert_eq!(e["scimType"], "uniqueness");
    assert_eq!(e["status"], "409");
}
