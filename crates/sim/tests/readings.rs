//! Each point the public Salesforce documentation leaves unconfirmed, played both ways: the
//! default reading and the other one ([`Reading`]), over plain HTTP against a running emulator.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use scimsync_sim::salesforce::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Reading, SalesforceConfig, SalesforceSim,
};
use serde_json::{Value, json};

const FED: &str = "urn:salesforce:schemas:extension:1.0:User";
const ENT: &str = "urn:salesforce:schemas:extension:1.0:Entitlement";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

struct Org {
    sim: SalesforceSim,
    http: reqwest::Client,
    token: String,
}

async fn org(config: SalesforceConfig) -> Org {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = SalesforceSim::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    Org { sim, http, token }
}

/// The demo org playing the default reading but for what `change` sets.
async fn org_reading(change: impl FnOnce(&mut Reading)) -> Org {
    let mut config = SalesforceConfig::demo();
    change(&mut config.reading);
    org(config).await
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
    /// Creates a user with a Standard User profile, `extra` merged over the body.
    async fn create(&self, user_name: &str, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({
            "schemas": [CORE_USER],
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
    /// Creates a user and returns its id.
    async fn user(&self, user_name: &str) -> String {
        let (s, u) = self.create(user_name, json!({})).await;
        assert_eq!(s, 201, "{u}");
        u["id"].as_str().unwrap().to_owned()
    }
    async fn group(&self, name: &str) -> String {
        let (s, g) = self.post("/Groups", json!({"displayName": name})).await;
        assert_eq!(s, 201, "{g}");
        g["id"].as_str().unwrap().to_owned()
    }
    fn members(&self, group: &str) -> Vec<String> {
        self.sim.inspect().group_by_name(group).unwrap().members
    }
}

/// The `detail` of a Salesforce error body.
fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

fn add_members(ids: &[&str]) -> Value {
    let members: Vec<Value> = ids.iter().map(|i| json!({"value": i})).collect();
    json!([{"op": "add", "path": "members", "value": {"members": members}}])
}

#[tokio::test]
async fn federation_extension_declared_or_not() {
    let fed = json!({FED: {"federationIdentifier": "ada-fed"}});

    // Default: stored, returned, updatable.
    let o = org(SalesforceConfig::demo()).await;
    let (s, u) = o.create("ada@example.com", fed.clone()).await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(u[FED]["federationIdentifier"], "ada-fed");
    assert!(u["schemas"].as_array().unwrap().contains(&json!(FED)));
    let id = u["id"].as_str().unwrap().to_owned();
    let (s, u) = o
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": format!("{FED}:federationIdentifier"), "value": "ada-2"}]),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u[FED]["federationIdentifier"], "ada-2");

    // Not declared: ignored on create, refused whole on update.
    let o = org_reading(|r| r.federation_extension = false).await;
    let (s, u) = o.create("ada@example.com", fed.clone()).await;
    assert_eq!(s, 201, "{u}");
    assert!(u.get(FED).is_none(), "{u}");
    assert_eq!(u["schemas"], json!([CORE_USER, ENTERPRISE]));
    let id = u["id"].as_str().unwrap().to_owned();
    assert_eq!(
        o.sim
            .inspect()
            .user_by_name("ada@example.com")
            .unwrap()
            .federation_id,
        None
    );
    let (s, e) = o
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"displayName": "Countess", FED: {"federationIdentifier": "x"}}}]),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(detail(&e).starts_with("INVALID_FIELD:"), "{e}");
    assert!(detail(&e).contains("federationIdentifier"), "{e}");
    let (s, e) = o
        .patch(
            &format!("/Users/{id}"),
            json!([
                {"op": "replace", "value": {"title": "Analyst"}},
                {"op": "replace", "path": format!("{FED}:federationIdentifier"), "value": "x"},
            ]),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(detail(&e).contains("federationIdentifier"), "{e}");
    let (_, u) = o.get(&format!("/Users/{id}")).await;
    assert_eq!(u["displayName"], "Ada Lovelace", "nothing applied: {u}");
    assert!(u.get("title").is_none(), "nothing applied: {u}");
    assert!(u.get(FED).is_none());
    assert_eq!(
        o.sim
            .inspect()
            .user_by_name("ada@example.com")
            .unwrap()
            .version,
        1
    );
}

#[tokio::test]
async fn entitlements_tell_licences_and_group_rules_or_not() {
    for told in [true, false] {
        let o = org_reading(|r| r.allows_groups_extension = told).await;
        let (s, e) = o.get("/Entitlements").await;
        assert_eq!(s, 200);
        let items = e["Resources"].as_array().unwrap();
        let chatter = items
            .iter()
            .find(|i| i["displayName"] == "Chatter Free User")
            .unwrap();
        assert_eq!(chatter["type"], "Profile");
        if told {
            assert_eq!(chatter[ENT]["allowsGroups"], false);
            assert_eq!(chatter[ENT]["userLicense"], "Chatter Free");
        } else {
            assert!(items.iter().all(|i| i.get(ENT).is_none()), "{e}");
        }
        // The rule applies either way.
        let (s, u) = o
            .create(
                "free@example.com",
                json!({"entitlements": [{"value": o.id("Chatter Free User")}]}),
            )
            .await;
        assert_eq!(s, 201, "{u}");
        let uid = u["id"].as_str().unwrap().to_owned();
        let gid = o.group("Sales").await;
        let (s, e) = o
            .patch(&format!("/Groups/{gid}"), add_members(&[&uid]))
            .await;
        assert_eq!(s, 400, "{e}");
        assert!(o.members("Sales").is_empty());
    }
}

#[tokio::test]
async fn refused_member_named_or_not() {
    for named in [true, false] {
        let o = org_reading(|r| r.names_refused_member = named).await;
        let good = o.user("good@example.com").await;
        let idle = o.user("idle@example.com").await;
        o.patch(
            &format!("/Users/{idle}"),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await;
        let (_, free) = o
            .create(
                "free@example.com",
                json!({"entitlements": [{"value": o.id("Chatter Free User")}]}),
            )
            .await;
        let free = free["id"].as_str().unwrap().to_owned();
        let unknown = "0055g9999999999AAK".to_owned();
        let gid = o.group("Sales").await;
        for bad in [&idle, &free, &unknown] {
            let (s, e) = o
                .patch(&format!("/Groups/{gid}"), add_members(&[&good, bad]))
                .await;
            assert_eq!(s, 400, "{e}");
            if named {
                assert!(detail(&e).contains(bad.as_str()), "{e}");
            } else {
                assert_eq!(
                    detail(&e),
                    "FIELD_INTEGRITY_EXCEPTION:one or more users can't be members of groups;"
                );
                assert!(!detail(&e).contains(bad.as_str()));
            }
            assert!(o.members("Sales").is_empty(), "nothing applied");
        }
        let (s, _) = o
            .patch(&format!("/Groups/{gid}"), add_members(&[&good]))
            .await;
        assert_eq!(s, 200);
    }
}

#[tokio::test]
async fn last_name_required_or_not() {
    let no_last = json!({"name": {"givenName": "Ada"}});

    let o = org(SalesforceConfig::demo()).await;
    let (s, u) = o.create("ada@example.com", no_last.clone()).await;
    assert_eq!(s, 201, "{u}");
    let id = o.user("bob@example.com").await;
    let (s, _) = o
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "remove", "path": "name.familyName"}]),
        )
        .await;
    assert_eq!(s, 200);

    let o = org_reading(|r| r.last_name_required = true).await;
    for name in [
        no_last,
        json!({"name": {"givenName": "Ada", "familyName": " "}}),
    ] {
        let (s, e) = o.create("ada@example.com", name).await;
        assert_eq!(s, 400, "{e}");
        assert!(detail(&e).starts_with("REQUIRED_FIELD_MISSING:"), "{e}");
        assert!(detail(&e).contains("LastName"), "{e}");
        assert!(o.sim.inspect().user_by_name("ada@example.com").is_none());
    }
    let id = o.user("bob@example.com").await;
    for ops in [
        json!([{"op": "remove", "path": "name.familyName"}]),
        json!([{"op": "replace", "path": "name.familyName", "value": ""}]),
        json!([{"op": "replace", "value": {"title": "CTO", "name": {"familyName": null}}}]),
    ] {
        let (s, e) = o.patch(&format!("/Users/{id}"), ops).await;
        assert_eq!(s, 400, "{e}");
        assert!(detail(&e).contains("LastName"), "{e}");
        let u = o.sim.inspect().user_by_name("bob@example.com").unwrap();
        assert_eq!(u.family_name.as_deref(), Some("Lovelace"));
        assert_eq!(u.title, None, "nothing applied");
    }
    let (s, u) = o
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "name.familyName", "value": "Byron"}]),
        )
        .await;
    assert_eq!(
        (s.as_u16(), &u["name"]["familyName"]),
        (200, &json!("Byron"))
    );
}

#[tokio::test]
async fn members_per_patch_capped_or_not() {
    let o = org(SalesforceConfig::demo()).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(o.user(&format!("u{i}@example.com")).await);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let gid = o.group("Sales").await;
    let (s, _) = o.patch(&format!("/Groups/{gid}"), add_members(&refs)).await;
    assert_eq!(s, 200, "no cap by default");
    assert_eq!(o.members("Sales").len(), 3);

    // The cap, switched on at run time: adds and removes count together.
    o.sim.knobs().set_reading(Reading {
        max_members_per_patch: Some(2),
        ..Reading::default()
    });
    let other = o.group("Support").await;
    let (s, e) = o
        .patch(&format!("/Groups/{other}"), add_members(&refs))
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(detail(&e).starts_with("LIMIT_EXCEEDED:"), "{e}");
    assert!(detail(&e).contains("at most 2 members"), "{e}");
    assert!(o.members("Support").is_empty(), "nothing applied");
    let (s, e) = o
        .patch(
            &format!("/Groups/{gid}"),
            json!([
                {"op": "remove", "path": "members", "value": {"members": [{"value": refs[0]}, {"value": refs[1]}]}},
                {"op": "remove", "path": format!("members[value eq \"{}\"]", refs[2])},
            ]),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(o.members("Sales").len(), 3, "nothing applied");
    let (s, _) = o
        .patch(&format!("/Groups/{other}"), add_members(&refs[..2]))
        .await;
    assert_eq!(s, 200, "at the cap is fine");
    assert_eq!(o.members("Support").len(), 2);

    // strict() caps at 50.
    assert_eq!(
        SalesforceConfig::strict().reading.max_members_per_patch,
        Some(50)
    );
}

#[tokio::test]
async fn usernames_taken_in_another_org_or_not() {
    let o = org(SalesforceConfig::demo()).await;
    let (s, _) = o.create("taken@example.com", json!({})).await;
    assert_eq!(s, 201, "free by default");

    let o = org(SalesforceConfig {
        reading: Reading::default().with_taken_username("Taken@Example.com"),
        ..SalesforceConfig::demo()
    })
    .await;
    let (s, e) = o.create("TAKEN@example.com", json!({})).await;
    assert_eq!(s, 409, "{e}");
    assert!(
        detail(&e).starts_with("DUPLICATE_USERNAME:Duplicate Username.<br>"),
        "{e}"
    );
    assert!(
        detail(&e).contains("another Salesforce organization"),
        "{e}"
    );
    let (s, l) = o
        .get("/Users?filter=userName%20eq%20%22taken%40example.com%22")
        .await;
    assert_eq!((s.as_u16(), &l["totalResults"]), (200, &json!(0)));
    let (_, l) = o.get("/Users").await;
    assert_eq!(l["totalResults"], 0, "never seen: {l}");

    // Renaming to a taken name, one taken at run time too.
    let id = o.user("ada@example.com").await;
    o.sim.knobs().take_username("Later@Example.com");
    for name in ["taken@example.com", "later@example.com"] {
        let (s, e) = o
            .patch(
                &format!("/Users/{id}"),
                json!([{"op": "replace", "value": {"userName": name, "title": "CTO"}}]),
            )
            .await;
        assert_eq!(s, 409, "{e}");
        assert!(detail(&e).starts_with("DUPLICATE_USERNAME:"), "{e}");
        let u = o.sim.inspect().user_by_name("ada@example.com").unwrap();
        assert_eq!(u.title, None, "nothing applied");
    }
    assert!(
        o.sim
            .inspect()
            .reading()
            .taken_usernames
            .contains("later@example.com")
    );
}

#[tokio::test]
async fn catalogue_endpoints_served_or_not() {
    let o = org(SalesforceConfig::demo()).await;
    assert_eq!(o.get("/Entitlements").await.0, 200);
    assert_eq!(o.get("/Roles").await.0, 200);

    let o = org_reading(|r| r.catalogue_endpoints = false).await;
    for path in ["/Entitlements", "/Roles"] {
        let (s, e) = o.get(path).await;
        assert_eq!(s, 404, "{e}");
        assert_eq!(
            e["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert_eq!(e["status"], 404);
    }
    // Entitlements on users still work.
    let (s, u) = o
        .create(
            "ada@example.com",
            json!({"entitlements": [{"value": o.id("Standard User")}, {"value": o.id("API Access")}]}),
        )
        .await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(u["entitlements"].as_array().unwrap().len(), 2);
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn attribute<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap()
}

fn check_list(list: &Value) {
    assert_eq!(
        list["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    let n = list["Resources"].as_array().unwrap().len();
    assert_eq!(list["totalResults"], n);
    assert_eq!(list["itemsPerPage"], n);
    assert_eq!(list["startIndex"], 1);
}

#[tokio::test]
async fn schemas_and_resource_types_follow_the_reading() {
    // Default.
    let o = org(SalesforceConfig::demo()).await;
    let (s, schemas) = o.get("/Schemas").await;
    assert_eq!(s, 200);
    check_list(&schemas);
    assert_eq!(
        ids(&schemas),
        [
            CORE_USER,
            ENTERPRISE,
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            FED,
            ENT,
            "urn:salesforce:schemas:extension:1.0:Role",
        ]
    );
    let user = &schemas["Resources"][0];
    assert_eq!(
        user["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"])
    );
    let user_name = attribute(user, "userName");
    assert_eq!(
        (
            &user_name["type"],
            &user_name["required"],
            &user_name["multiValued"]
        ),
        (&json!("string"), &json!(true), &json!(false))
    );
    let name = attribute(user, "name");
    assert_eq!(name["type"], "complex");
    let family = name["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "familyName")
        .unwrap();
    assert_eq!(family["required"], false);
    for a in [
        "displayName",
        "nickName",
        "title",
        "emails",
        "phoneNumbers",
        "active",
        "entitlements",
        "roles",
        "externalId",
    ] {
        let attr = attribute(user, a);
        assert!(
            attr["mutability"].is_string() && attr["type"].is_string(),
            "{attr}"
        );
    }
    assert_eq!(attribute(user, "emails")["multiValued"], true);
    assert_eq!(attribute(user, "active")["type"], "boolean");
    let enterprise = &schemas["Resources"][1];
    for a in [
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
    ] {
        assert_eq!(attribute(enterprise, a)["type"], "string");
    }
    assert_eq!(attribute(enterprise, "manager")["type"], "complex");
    assert_eq!(
        attribute(&schemas["Resources"][3], "federationIdentifier")["type"],
        "string"
    );
    let (s, one) = o.get(&format!("/Schemas/{FED}")).await;
    assert_eq!((s.as_u16(), &one["id"]), (200, &json!(FED)));

    let (s, types) = o.get("/ResourceTypes").await;
    assert_eq!(s, 200);
    check_list(&types);
    assert_eq!(ids(&types), ["User", "Group", "Entitlement", "Role"]);
    assert_eq!(
        types["Resources"][0]["schemaExtensions"],
        json!([{"schema": ENTERPRISE, "required": false}, {"schema": FED, "required": false}])
    );
    assert_eq!(types["Resources"][0]["schema"], CORE_USER);
    assert_eq!(types["Resources"][0]["endpoint"], "/Users");
    for path in ["/ServiceProviderConfigs", "/ServiceProviderConfig"] {
        assert_eq!(o.get(path).await.0, 200);
    }

    // Strict.
    let o = org(SalesforceConfig::strict()).await;
    assert_eq!(o.sim.inspect().reading(), Reading::strict());
    let (_, schemas) = o.get("/Schemas").await;
    check_list(&schemas);
    assert_eq!(
        ids(&schemas),
        [
            CORE_USER,
            ENTERPRISE,
            "urn:ietf:params:scim:schemas:core:2.0:Group"
        ]
    );
    let family = attribute(&schemas["Resources"][0], "name")["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "familyName")
        .unwrap()
        .clone();
    assert_eq!(family["required"], true);
    assert_eq!(o.get(&format!("/Schemas/{FED}")).await.0, 404);
    let (_, types) = o.get("/ResourceTypes").await;
    check_list(&types);
    assert_eq!(ids(&types), ["User", "Group"]);
    assert_eq!(
        types["Resources"][0]["schemaExtensions"],
        json!([{"schema": ENTERPRISE, "required": false}])
    );
    let (s, one) = o.get("/ResourceTypes/Group").await;
    assert_eq!((s.as_u16(), &one["endpoint"]), (200, &json!("/Groups")));

    // Generic mode: no Salesforce parts.
    let o = org(SalesforceConfig::generic()).await;
    let (_, schemas) = o.get("/Schemas").await;
    assert_eq!(ids(&schemas).len(), 3);
    let (_, types) = o.get("/ResourceTypes").await;
    assert_eq!(ids(&types), ["User", "Group"]);
    assert_eq!(
        types["Resources"][0]["schemaExtensions"],
        json!([{"schema": ENTERPRISE, "required": false}])
    );
}

/// `GET {path}?filter=…` (the filter percent-encoded) and the userNames or displayNames of
/// the answer, in order, with its totalResults.
async fn filtered(o: &Org, path: &str, filter: &str, extra: &str) -> (StatusCode, Value) {
    let encoded: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    o.get(&format!("{path}?filter={encoded}{extra}")).await
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[key].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn filters_with_or_answered_or_refused() {
    // Default: clauses joined by `or` (any case), over id, userName (ignoring case) and
    // externalId (exactly), answered in id order, each user once, paged by count.
    let o = org(SalesforceConfig::demo()).await;
    let ada = o.user("ada@example.com").await;
    let (s, _) = o
        .create(
            "grace@example.com",
            json!({"externalId": r#"G"race\1"#, "nickName": "grace"}),
        )
        .await;
    assert_eq!(s, 201);
    let alan = o.user("alan@example.com").await;
    let filter = format!(
        r#"id eq "{alan}" OR userName eq "ADA@example.com" or externalId eq "G\"race\\1" or id eq "{ada}" or id eq "005000000000999AAA""#
    );
    let (s, list) = filtered(&o, "/Users", &filter, "").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["totalResults"], 3, "{list}");
    assert_eq!(
        names(&list, "userName"),
        ["ada@example.com", "grace@example.com", "alan@example.com"]
    );
    let (s, page) = filtered(&o, "/Users", &filter, "&startIndex=2&count=1").await;
    assert_eq!(s, 200);
    assert_eq!(page["totalResults"], 3);
    assert_eq!(names(&page, "userName"), ["grace@example.com"]);
    // An externalId is matched exactly.
    let (_, none) = filtered(&o, "/Users", r#"externalId eq "g\"race\\1""#, "").await;
    assert_eq!(none["totalResults"], 0, "{none}");
    // Groups by id and displayName.
    let sales = o.group("Sales").await;
    o.group("Support").await;
    let (s, groups) = filtered(
        &o,
        "/Groups",
        &format!(r#"displayName eq "support" or id eq "{sales}""#),
        "",
    )
    .await;
    assert_eq!(s, 200, "{groups}");
    assert_eq!(names(&groups, "displayName"), ["Sales", "Support"]);
    // What the emulator does not filter on is refused, not ignored.
    for (path, bad) in [
        ("/Users", r#"displayName eq "x""#),
        ("/Groups", r#"userName eq "x""#),
        ("/Users", r#"id eq "a" and id eq "b""#),
        ("/Users", r#"id eq "a" or"#),
        ("/Users", r#"id eq "a" orid eq "b""#),
        ("/Users", r#"id eq "a"#),
    ] {
        let (s, e) = filtered(&o, path, bad, "").await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert!(
            detail(&e).starts_with("INVALID_QUERY_FILTER_OPERATOR"),
            "{e}"
        );
    }

    // The other reading: one clause only; `or` is refused in Salesforce's error envelope.
    let o = org_reading(|r| r.filter_or = false).await;
    let ada = o.user("ada@example.com").await;
    let (s, one) = filtered(&o, "/Users", &format!(r#"id eq "{ada}""#), "").await;
    assert_eq!(s, 200);
    assert_eq!(names(&one, "userName"), ["ada@example.com"]);
    let (s, e) = filtered(
        &o,
        "/Users",
        &format!(r#"id eq "{ada}" or userName eq "x@example.com""#),
        "",
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        detail(&e).starts_with("INVALID_QUERY_FILTER_OPERATOR:"),
        "{e}"
    );
    assert!(detail(&e).contains("or is not supported"), "{e}");
    assert_eq!(e["status"], 400, "{e}");
    let (s, _) = filtered(&o, "/Groups", r#"id eq "a" or id eq "b""#, "").await;
    assert_eq!(s, 400);
    assert!(!Reading::strict().filter_or);
}
