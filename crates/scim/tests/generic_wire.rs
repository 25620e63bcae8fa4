//! Generic targets on the wire, checked with wiremock on loopback: updates by PUT of the whole
//! resource where PATCH is not supported, every rule that ends paging (and the page cap), an
//! HTML 500 summarised to one line in the error the engine records, and the removal of a
//! group's last members on a server that cannot hold an empty group; targeted reads
//! (`read_some`): filters joined by `or` in batches, escaped, paged, and the fallbacks for
//! servers that refuse `or`, ignore filters or evaluate part of one.
#![allow(clippy::unwrap_used)]

use scimsync_core::plan::UserChanges;
use scimsync_core::ports::{Classify, Disposition, Lookup, ReadScope, Target};
use scimsync_core::target::TargetCapabilities;
use scimsync_core::{TargetGroupId, TargetUserId};
use scimsync_scim::{Auth, Dialect, ScimClient, ScimConfig, ScimError, TargetedReads};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn config(server: &MockServer) -> ScimConfig {
    ScimConfig {
        backoff_base: Duration::from_millis(5),
        max_attempts: 3,
        ..ScimConfig::new(
            url::Url::parse(&format!("{}/v2", server.uri())).unwrap(),
            Auth::Bearer(SecretString::from("static-token".to_owned())),
            Dialect::Generic,
        )
    }
}

fn client(server: &MockServer) -> ScimClient {
    ScimClient::new(config(server)).unwrap()
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn user(id: &str) -> Value {
    json!({"schemas": [USER_SCHEMA], "id": id, "userName": format!("{id}@example.com"), "active": true})
}

/// A `ListResponse` of users with these ids.
fn page(ids: &[String], total: Option<usize>) -> Value {
    let mut v = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                       "Resources": ids.iter().map(|i| user(i)).collect::<Vec<_>>()});
    if let Some(t) = total {
        v["totalResults"] = json!(t);
    }
    v
}

// ---- PUT where PATCH is not supported ----

/// A user as the server holds it, with attributes scimsync never models.
fn stored_user() -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "id": "U1",
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "emails": [{"type": "work", "primary": true, "value": "ada@example.com"}],
        "photos": [{"type": "photo", "value": "https://photos.example.com/ada.jpg"}],
        "x509Certificates": [{"value": "MIIB"}],
        "groups": [{"value": "G1", "display": "Engineering"}],
        "active": true,
        "meta": {"resourceType": "User", "version": "W/\"5\""}
    })
}

#[tokio::test]
async fn without_patch_an_update_reads_the_user_then_puts_it_whole() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/ServiceProviderConfig"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "patch": {"supported": false}, "filter": {"supported": true},
            "etag": {"supported": true}, "sort": {"supported": false}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/Schemas"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"Resources": [
                {"id": USER_SCHEMA, "attributes": [
                    {"name": "userName", "type": "string", "required": true},
                    {"name": "name", "type": "complex"},
                    {"name": "emails", "type": "complex", "multiValued": true,
                     "subAttributes": [{"name": "value"}, {"name": "type"}, {"name": "primary"}]},
                    {"name": "active", "type": "boolean"},
                    {"name": "groups", "type": "complex", "mutability": "readOnly"}
                ]}
            ]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/Users/U1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "W/\"5\"")
                .set_body_json(stored_user()),
        )
        .mount(&server)
        .await;
    // A stale ETag once (someone changed the user in between): read again, PUT again.
    Mock::given(method("PUT"))
        .and(path("/v2/Users/U1"))
        .respond_with(ResponseTemplate::new(412).set_body_json(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "412", "detail": "ETag mismatch"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/Users/U1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "W/\"6\"")
                .set_body_json(stored_user()),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;

    let c = client(&server);
    let caps = c.discover().await.unwrap();
    assert!(!caps.patch);
    assert!(caps.notes.iter().any(|n| n.contains("by PUT")), "{caps:?}");
    let changes = UserChanges {
        given_name: Some(Some("Augusta".into())),
        email: Some("augusta@example.com".into()),
        active: Some(false),
        ..UserChanges::default()
    };
    c.update_user(&TargetUserId::from("U1"), &changes)
        .await
        .unwrap();

    let sent: Vec<(String, String)> = requests(&server)
        .await
        .iter()
        .filter(|r| r.url.path() == "/v2/Users/U1")
        .map(|r| (r.method.to_string(), r.url.path().to_owned()))
        .collect();
    let methods: Vec<&str> = sent.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        ["GET", "PUT", "GET", "PUT"],
        "read, write; on 412 once more"
    );
    let puts: Vec<Request> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "PUT")
        .collect();
    let put = body(&puts[1]);
    assert_eq!(
        puts[1].headers.get("if-match").unwrap(),
        "W/\"5\"",
        "the ETag just read"
    );
    assert_eq!(put["name"]["givenName"], "Augusta");
    assert_eq!(put["name"]["familyName"], "Lovelace", "unchanged, kept");
    assert_eq!(put["name"]["formatted"], "Ada Lovelace");
    assert_eq!(
        put["emails"],
        json!([{"type": "work", "primary": true, "value": "augusta@example.com"}])
    );
    assert_eq!(put["active"], false);
    assert_eq!(put["userName"], "ada@example.com");
    assert_eq!(
        put["photos"],
        stored_user()["photos"],
        "never modelled, kept"
    );
    assert_eq!(put["x509Certificates"], stored_user()["x509Certificates"]);
    for dropped in ["id", "meta", "groups"] {
        assert!(put.get(dropped).is_none(), "{dropped} is read-only: {put}");
    }
    assert_eq!(put["schemas"], json!([USER_SCHEMA]));
}

#[tokio::test]
async fn without_patch_members_and_renames_go_by_put_of_the_group() {
    let server = MockServer::start().await;
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "G1", "displayName": "Engineering", "memberCount": 2,
        "members": [{"value": "U1", "$ref": "http://x/v2/Users/U1"},
                    {"value": "U2", "$ref": "http://x/v2/Users/U2"}],
        "externalRef": "kept-as-is",
        "meta": {"resourceType": "Group"}
    });
    Mock::given(method("GET"))
        .and(path("/v2/Groups/G1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "W/\"1\"")
                .set_body_json(group.clone()),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/Groups/G1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(group.clone()))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let c = client(&server);
    // A cached discovery: no PATCH, no ETags, memberCount read-only.
    c.use_capabilities(&TargetCapabilities {
        patch: false,
        filter: true,
        etag: false,
        group_read_only: ["memberCount".to_owned()].into(),
        ..TargetCapabilities::default()
    });
    let g = TargetGroupId::from("G1");
    c.add_members(&g, &[TargetUserId::from("U3"), TargetUserId::from("U1")])
        .await
        .unwrap();
    c.remove_members(&g, &[TargetUserId::from("U1")])
        .await
        .unwrap();
    c.rename_group(&g, "Research").await.unwrap();

    let puts: Vec<Request> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "PUT")
        .collect();
    assert_eq!(puts.len(), 3);
    assert!(
        puts.iter().all(|p| p.headers.get("if-match").is_none()),
        "no ETags declared: no If-Match"
    );
    let values = |b: &Value| -> Vec<String> {
        b["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_owned())
            .collect()
    };
    let added = body(&puts[0]);
    assert_eq!(values(&added), ["U1", "U2", "U3"], "U1 not doubled");
    assert_eq!(
        added["members"][2]["$ref"],
        format!("{}/v2/Users/U3", server.uri())
    );
    assert_eq!(added["displayName"], "Engineering");
    assert_eq!(added["externalRef"], "kept-as-is");
    for dropped in ["id", "meta", "memberCount"] {
        assert!(added.get(dropped).is_none(), "{dropped}: {added}");
    }
    assert_eq!(values(&body(&puts[1])), ["U2"]);
    let renamed = body(&puts[2]);
    assert_eq!(renamed["displayName"], "Research");
    assert_eq!(values(&renamed), ["U1", "U2"], "members as read");
}

// ---- Paging ----

#[tokio::test]
async fn a_page_repeated_forever_stops_after_the_repeat() {
    let server = MockServer::start().await;
    let ids = vec!["U1".to_owned(), "U2".to_owned()];
    // Ignores startIndex and lies about the total.
    Mock::given(method("GET"))
        .and(path("/v2/Users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&ids, Some(1_000))))
        .mount(&server)
        .await;
    let c = ScimClient::new(ScimConfig {
        page_size: 2,
        ..config(&server)
    })
    .unwrap();
    let users = c.list_users().await.unwrap();
    assert_eq!(users.len(), 2, "each user once");
    assert_eq!(
        requests(&server).await.len(),
        2,
        "the page, then its repeat"
    );
}

/// New ids on every page, whatever is asked, under a total that never comes.
struct Endless;

impl Respond for Endless {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let start: usize = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "startIndex")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1);
        let ids = vec![format!("U{start}"), format!("U{}", start + 1)];
        ResponseTemplate::new(200).set_body_json(page(&ids, Some(usize::MAX >> 12)))
    }
}

#[tokio::test]
async fn new_ids_forever_stop_at_the_page_cap_with_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/Users"))
        .respond_with(Endless)
        .mount(&server)
        .await;
    let c = ScimClient::new(ScimConfig {
        page_size: 2,
        max_pages: 5,
        ..config(&server)
    })
    .unwrap();
    let err = c.list_users().await.unwrap_err();
    assert!(matches!(err, ScimError::InvalidResponse { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("paging did not end after 5 pages (10 resources)"),
        "{text}"
    );
    assert_eq!(requests(&server).await.len(), 5);
}

#[tokio::test]
async fn malformed_lists_are_errors_not_empty_targets() {
    for (answer, says) in [
        (
            json!({"totalResults": 2, "Resources": "none"}),
            "Resources is a string, not a list",
        ),
        (
            json!({"totalResults": 3}),
            "Resources is missing although totalResults is 3",
        ),
        (json!([user("U1")]), "must be a JSON object, not a list"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/Users"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer.clone()))
            .mount(&server)
            .await;
        let err = client(&server).list_users().await.unwrap_err();
        assert!(matches!(err, ScimError::InvalidResponse { .. }), "{err:?}");
        assert!(err.to_string().contains(says), "{answer}: {err}");
        assert_eq!(
            err.disposition(),
            Disposition::Refused { code: None },
            "never read as an empty target"
        );
    }
}

#[tokio::test]
async fn a_500_on_count_is_tried_once_then_paging_goes_by_start_index() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/Users"))
        .and(query_param("count", "2"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_string("<html><head><title>500 Internal Server Error</title></head><body>\n<h1>Internal Server Error</h1>\n</body></html>"),
        )
        .mount(&server)
        .await;
    let all: Vec<String> = (1..=3).map(|i| format!("U{i}")).collect();
    Mock::given(method("GET"))
        .and(path("/v2/Users"))
        .and(query_param_is_missing("count"))
        .and(query_param("startIndex", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&all[..2], Some(3))))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/Users"))
        .and(query_param_is_missing("count"))
        .and(query_param("startIndex", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&all[2..], Some(3))))
        .mount(&server)
        .await;
    let c = ScimClient::new(ScimConfig {
        page_size: 2,
        ..config(&server)
    })
    .unwrap();
    let users = c.list_users().await.unwrap();
    assert_eq!(users.len(), 3);
    let queries: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| r.url.query().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        queries,
        ["startIndex=1&count=2", "startIndex=1", "startIndex=3"],
        "one try with count, none after"
    );
    // Later listings never send count again.
    c.list_users().await.unwrap();
    assert!(
        requests(&server).await.iter().skip(3).all(|r| !r
            .url
            .query()
            .unwrap_or_default()
            .contains("count"))
    );
}

#[tokio::test]
async fn an_empty_page_ends_paging() {
    let server = MockServer::start().await;
    let ids = vec!["U1".to_owned(), "U2".to_owned()];
    // No totalResults: full pages, then an empty one.
    Mock::given(method("GET"))
        .and(path("/v2/Users"))
        .and(query_param("startIndex", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&ids, None)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/Users"))
        .and(query_param("startIndex", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&[], None)))
        .mount(&server)
        .await;
    let c = ScimClient::new(ScimConfig {
        page_size: 2,
        ..config(&server)
    })
    .unwrap();
    assert_eq!(c.list_users().await.unwrap().len(), 2);
    assert_eq!(requests(&server).await.len(), 2);
}

// ---- Error summaries ----

#[tokio::test]
async fn an_html_500_becomes_one_short_line_with_the_page_title() {
    let server = MockServer::start().await;
    let filler =
        "<p>Traceback (most recent call last):\n  File \"app.py\", line 1\n</p>\n".repeat(200);
    let html = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<title>500 Internal Server Error</title>\n</head>\n<body>\n{filler}</body>\n</html>\n"
    );
    Mock::given(method("PATCH"))
        .and(path("/v2/Users/U1"))
        .respond_with(ResponseTemplate::new(500).set_body_string(html))
        .mount(&server)
        .await;
    let c = client(&server);
    let err = c
        .update_user(
            &TargetUserId::from("U1"),
            &UserChanges {
                active: Some(false),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap_err();
    // What the engine records in the activity log and `runs`: the error's Display (its
    // source chain is empty).
    let recorded = err.to_string();
    assert!(std::error::Error::source(&err).is_none());
    assert_eq!(
        recorded,
        "the target failed with 500: HTML page: 500 Internal Server Error"
    );
    assert!(!recorded.contains('\n') && recorded.chars().count() <= 200);
    assert!(matches!(err.disposition(), Disposition::Retryable { .. }));

    // A page without a title and a long JSON-less body: cut to one line of at most 200.
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(502).set_body_string(format!(
            "<html><body><h1>Bad Gateway</h1>\n{}</body></html>",
            "upstream said no\n".repeat(100)
        )))
        .mount(&server)
        .await;
    let err = client(&server)
        .update_user(
            &TargetUserId::from("U1"),
            &UserChanges {
                active: Some(false),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap_err();
    let ScimError::Server { status, detail, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 502);
    assert!(detail.starts_with("HTML page: Bad Gateway"), "{detail}");
    assert!(detail.chars().count() <= 200, "{detail}");
    assert!(!err.to_string().contains('\n'));
}

// ---- A server that cannot empty a group ----

#[tokio::test]
async fn removing_the_last_member_where_a_group_cannot_be_empty_is_a_refusal() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/Users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalResults": 2,
            "Resources": [
                {"id": "U1", "userName": "ada", "active": true},
                {"id": "U2", "userName": "bob", "active": true}
            ]
        })))
        .mount(&server)
        .await;
    // Members listed by userName, as Canaille does.
    let lonely = json!({"id": "G1", "displayName": "Solo", "members": [{"value": "ada"}]});
    let pair = json!({"id": "G2", "displayName": "Pair",
                      "members": [{"value": "ada"}, {"value": "bob"}]});
    Mock::given(method("GET"))
        .and(path("/v2/Groups"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalResults": 2, "Resources": [lonely.clone(), pair.clone()]
        })))
        .mount(&server)
        .await;
    for (id, g) in [("G1", &lonely), ("G2", &pair)] {
        Mock::given(method("GET"))
            .and(path(format!("/v2/Groups/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(g.clone()))
            .mount(&server)
            .await;
    }
    Mock::given(method("PATCH"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_string("<html><title>500 Internal Server Error</title></html>"),
        )
        .mount(&server)
        .await;
    let c = client(&server);
    let snapshot = c
        .read(ReadScope {
            groups: true,
            catalogue: false,
        })
        .await
        .unwrap();
    assert_eq!(snapshot.groups[0].members, [TargetUserId::from("U1")]);

    let err = c
        .remove_members(&TargetGroupId::from("G1"), &[TargetUserId::from("U1")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ScimError::Refused { status: 500, code: Some(c), .. } if c == "emptyGroup"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("without members") && text.contains("500 Internal Server Error"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    assert_eq!(
        err.disposition(),
        Disposition::Refused {
            code: Some("emptyGroup".into())
        },
        "held by the engine, not retried every run"
    );
    let patches: Vec<Request> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "a deterministic failure is not retried");
    assert_eq!(
        body(&patches[0])["Operations"][0]["path"],
        "members[value eq \"ada\"]"
    );

    // A group that would keep a member: the 500 is a server failure, retried as usual.
    let err = c
        .remove_members(&TargetGroupId::from("G2"), &[TargetUserId::from("U1")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ScimError::Server { status: 500, .. }),
        "{err:?}"
    );
    let patches = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .count();
    assert_eq!(patches, 1 + 1 + 3, "one try, then the usual three");
}

// ---- targeted reads (read_some) ----

/// The values of a filter `attr eq "v1" or attr eq "v2" …` (any attribute), unescaped.
fn filter_values(filter: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = filter;
    while let Some(at) = rest.find(" eq \"") {
        let attr = rest[..at].rsplit(' ').next().unwrap().to_owned();
        let mut value = String::new();
        let mut chars = rest[at + 5..].char_indices();
        let mut end = 0;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.push(chars.next().unwrap().1),
                '"' => {
                    end = at + 5 + i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((attr, value));
        rest = &rest[end..];
    }
    out
}

/// A server holding users `u0`…`u{n-1}` (userName `u{i}@example.com`, externalId `E{i}`)
/// that answers filters as asked, `per_page` at a time with `totalResults`; `GET /Users/{id}`
/// answers the user or 404. With `ignore`, every filter is answered with everyone; with
/// `refuse_or`, a filter joined by `or` gets a 400 `invalidFilter`; with `first_only`, only
/// the first clause of a filter is evaluated.
#[derive(Clone, Default)]
struct Directory {
    n: usize,
    per_page: usize,
    ignore: bool,
    refuse_or: bool,
    first_only: bool,
}

impl Directory {
    fn user(&self, i: usize) -> Value {
        json!({"schemas": [USER_SCHEMA], "id": format!("u{i}"), "userName": format!("u{i}@example.com"),
               "externalId": format!("E{i}"), "active": true})
    }
}

impl Respond for Directory {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let segments: Vec<&str> = req.url.path().trim_matches('/').split('/').collect();
        if let ["v2", "Users", id] = segments[..] {
            return match id.strip_prefix('u').and_then(|i| i.parse::<usize>().ok()) {
                Some(i) if i < self.n => ResponseTemplate::new(200).set_body_json(self.user(i)),
                _ => ResponseTemplate::new(404)
                    .set_body_json(json!({"status": "404", "detail": "no such user"})),
            };
        }
        let q = |k: &str| {
            req.url
                .query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
        };
        let filter = q("filter");
        if self.refuse_or && filter.as_deref().is_some_and(|f| f.contains(" or ")) {
            return ResponseTemplate::new(400).set_body_json(
                json!({"status": "400", "scimType": "invalidFilter", "detail": "or is not supported"}),
            );
        }
        let all: Vec<usize> = (0..self.n).collect();
        let matching: Vec<usize> = match filter {
            Some(f) if !self.ignore => {
                let mut clauses = filter_values(&f);
                if self.first_only {
                    clauses.truncate(1);
                }
                all.into_iter()
                    .filter(|i| {
                        let u = self.user(*i);
                        clauses.iter().any(|(attr, v)| match attr.as_str() {
                            "userName" => u["userName"].as_str().unwrap().eq_ignore_ascii_case(v),
                            a => u[a].as_str() == Some(v.as_str()),
                        })
                    })
                    .collect()
            }
            _ => all,
        };
        let start: usize = q("startIndex").and_then(|s| s.parse().ok()).unwrap_or(1);
        let page: Vec<Value> = matching
            .iter()
            .skip(start - 1)
            .take(self.per_page)
            .map(|i| self.user(*i))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": matching.len(), "startIndex": start, "itemsPerPage": page.len(),
            "Resources": page,
        }))
    }
}

async fn directory(d: Directory) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(d)
        .mount(&server)
        .await;
    server
}

fn user_ids(ids: impl IntoIterator<Item = String>) -> Vec<TargetUserId> {
    ids.into_iter().map(TargetUserId::from).collect()
}

fn sorted_ids(snapshot: &scimsync_core::target::TargetSnapshot) -> Vec<String> {
    let mut ids: Vec<String> = snapshot.users.iter().map(|u| u.id.to_string()).collect();
    ids.sort();
    ids
}

/// The filters the server received, in order.
async fn filters(server: &MockServer) -> Vec<String> {
    requests(server)
        .await
        .iter()
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "filter")
                .map(|(_, v)| v.into_owned())
        })
        .collect()
}

#[tokio::test]
async fn read_some_joins_clauses_by_or_in_batches_escaped_and_pages_each_answer() {
    let server = directory(Directory {
        n: 200,
        per_page: 30,
        ..Directory::default()
    })
    .await;
    let c = client(&server);
    let mut ids: Vec<String> = (0..120).map(|i| format!("u{i}")).collect();
    ids.push("u5".into()); // asked twice, sent once
    let lookup = Lookup {
        user_ids: user_ids(ids),
        user_names: vec![r#"a"b\c@example.com"#.into(), "U150@EXAMPLE.COM".into()],
        external_ids: vec!["E160".into(), "e161".into()],
        ..Lookup::default()
    };
    let got = c.read_some(&lookup).await.unwrap();
    let mut want: Vec<String> = (0..120)
        .chain([150, 160])
        .map(|i| format!("u{i}"))
        .collect();
    want.sort();
    assert_eq!(sorted_ids(&got), want);
    let sent = filters(&server).await;
    // Three batches of ids (50, 50, 20), each answer paged by 30 with totalResults: 2 + 2 + 1
    // pages; one filter for the names, one for the externalIds.
    let by_id: Vec<&String> = sent.iter().filter(|f| f.starts_with("id eq ")).collect();
    assert_eq!(by_id.len(), 5, "{by_id:#?}");
    let distinct: std::collections::BTreeSet<&&String> = by_id.iter().collect();
    assert_eq!(distinct.len(), 3);
    assert_eq!(
        by_id[0].matches(" or ").count(),
        49,
        "50 clauses in the first filter"
    );
    assert!(by_id[0].starts_with(r#"id eq "u0" or id eq "u1" or id eq "u2""#));
    assert!(sent.contains(
        &r#"userName eq "a\"b\\c@example.com" or userName eq "U150@EXAMPLE.COM""#.to_owned()
    ));
    assert!(sent.contains(&r#"externalId eq "E160" or externalId eq "e161""#.to_owned()));
    assert_eq!(sent.len(), 7, "{sent:#?}");
    assert_eq!(
        requests(&server).await.len(),
        7,
        "no id was absent: no GET by id"
    );
    assert_eq!(c.targeted_reads(), TargetedReads::Or);
}

#[tokio::test]
async fn read_some_on_a_server_that_ignores_filters_lists_once_then_reads_by_id() {
    let server = directory(Directory {
        n: 40,
        per_page: 10,
        ignore: true,
        ..Directory::default()
    })
    .await;
    let c = client(&server);
    let lookup = Lookup {
        user_ids: user_ids(["u1".to_owned(), "u2".into(), "u99".into()]),
        user_names: vec!["U30@example.com".into()],
        ..Lookup::default()
    };
    let got = c.read_some(&lookup).await.unwrap();
    assert_eq!(sorted_ids(&got), ["u1", "u2", "u30"]);
    assert_eq!(c.targeted_reads(), TargetedReads::ById);
    let reqs = requests(&server).await;
    let paths: Vec<String> = reqs
        .iter()
        .map(|r| {
            let f = r.url.query_pairs().any(|(k, _)| k == "filter");
            format!("{}{}", r.url.path(), if f { "?filter" } else { "" })
        })
        .collect();
    // One page of the ignored filter (not the 4 pages of everyone), then the listing (4
    // pages), which the userName needs and which answers for the ids too.
    assert_eq!(
        paths,
        [
            "/v2/Users?filter",
            "/v2/Users",
            "/v2/Users",
            "/v2/Users",
            "/v2/Users",
        ],
    );
    // Remembered: the next read sends no filter.
    let before = requests(&server).await.len();
    let again = c
        .read_some(&Lookup {
            user_ids: user_ids(["u3".to_owned()]),
            ..Lookup::default()
        })
        .await
        .unwrap();
    assert_eq!(sorted_ids(&again), ["u3"]);
    assert_eq!(requests(&server).await.len(), before + 1);
}

#[tokio::test]
async fn read_some_on_a_server_refusing_or_sends_one_clause_a_request() {
    let server = directory(Directory {
        n: 10,
        per_page: 10,
        refuse_or: true,
        ..Directory::default()
    })
    .await;
    let c = client(&server);
    let lookup = Lookup {
        user_ids: user_ids(["u1".to_owned(), "u2".into()]),
        user_names: vec!["u3@example.com".into(), "u4@example.com".into()],
        ..Lookup::default()
    };
    let got = c.read_some(&lookup).await.unwrap();
    assert_eq!(sorted_ids(&got), ["u1", "u2", "u3", "u4"]);
    assert_eq!(c.targeted_reads(), TargetedReads::Single);
    // The first filter goes with `count` and, refused, once more without it (a generic
    // server's first 400 to a list request may be about `count`); then one clause a request.
    assert_eq!(
        filters(&server).await,
        [
            r#"id eq "u1" or id eq "u2""#,
            r#"id eq "u1" or id eq "u2""#,
            r#"userName eq "u3@example.com""#,
            r#"userName eq "u4@example.com""#
        ]
    );
    assert_eq!(requests(&server).await.len(), 2 + 2 + 2, "the ids by GET");
    // Remembered: the next read sends no `or`.
    let before = requests(&server).await.len();
    c.read_some(&lookup).await.unwrap();
    assert_eq!(requests(&server).await.len(), before + 4);
}

#[tokio::test]
async fn read_some_on_a_server_that_evaluates_part_of_an_or_misses_nobody() {
    let server = directory(Directory {
        n: 10,
        per_page: 10,
        first_only: true,
        ..Directory::default()
    })
    .await;
    let c = client(&server);
    let lookup = Lookup {
        user_ids: user_ids(["u1".to_owned(), "u2".into(), "u3".into(), "u77".into()]),
        ..Lookup::default()
    };
    let got = c.read_some(&lookup).await.unwrap();
    assert_eq!(sorted_ids(&got), ["u1", "u2", "u3"], "u2 and u3 read by id");
    assert_eq!(c.targeted_reads(), TargetedReads::Single);
}

#[tokio::test]
async fn read_some_without_filters_declared_sends_none() {
    let server = directory(Directory {
        n: 5,
        per_page: 10,
        ..Directory::default()
    })
    .await;
    let c = client(&server);
    c.use_capabilities(&TargetCapabilities {
        filter: false,
        ..TargetCapabilities::default()
    });
    let got = c
        .read_some(&Lookup {
            user_ids: user_ids(["u1".to_owned()]),
            external_ids: vec!["E4".into(), "e3".into()],
            ..Lookup::default()
        })
        .await
        .unwrap();
    assert_eq!(sorted_ids(&got), ["u1", "u4"], "externalIds exactly");
    assert!(filters(&server).await.is_empty());
    assert_eq!(c.targeted_reads(), TargetedReads::ById);
}
