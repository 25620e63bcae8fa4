//! The Duo Admin API emulator, driven over loopback HTTP by a small signer written here from
//! the fact sheet (§1), independent of the emulator's verifier.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use scimsync_sim::duo::{DuoSim, DuoSimConfig, SignatureScheme};
use scimsync_sim::generator::{DuoDataset, DuoUser, generate, sample};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha512};

#[derive(Clone, Copy, Debug)]
enum Version {
    V2Sha1,
    V2Sha512,
    V5,
}

/// Signs and sends Admin API GETs.
struct Client {
    http: reqwest::Client,
    base: String,
    host: String,
    ikey: String,
    skey: String,
    version: Version,
    /// Seconds added to the real clock for the `Date` header.
    date_shift: i64,
    /// Sends no `Date` header when false.
    send_date: bool,
}

struct Reply {
    status: u16,
    body: Value,
    retry_after: bool,
}

const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn hmac_hex<M: Mac + KeyInit>(key: &str, text: &str) -> String {
    let mut mac = <M as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Client {
    fn new(sim: &DuoSim, version: Version) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            host: sim.host(),
            ikey: sim.integration_key().to_owned(),
            skey: sim.secret_key().to_owned(),
            version,
            date_shift: 0,
            send_date: true,
        }
    }

    fn date(&self) -> String {
        let now = SystemTime::now();
        let shifted = if self.date_shift >= 0 {
            now + Duration::from_secs(self.date_shift.unsigned_abs())
        } else {
            now - Duration::from_secs(self.date_shift.unsigned_abs())
        };
        // Python's formatdate() style: "-0000" instead of "GMT".
        httpdate::fmt_http_date(shifted).replace(" GMT", " -0000")
    }

    fn signature(&self, date: &str, path: &str, params: &[(&str, &str)]) -> String {
        let mut encoded: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| {
                (
                    utf8_percent_encode(k, UNRESERVED).to_string(),
                    utf8_percent_encode(v, UNRESERVED).to_string(),
                )
            })
            .collect();
        encoded.sort();
        let canon = encoded
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let host = self.host.to_lowercase();
        let v2 = format!("{date}\nGET\n{host}\n{path}\n{canon}");
        match self.version {
            Version::V2Sha1 => hmac_hex::<Hmac<Sha1>>(&self.skey, &v2),
            Version::V2Sha512 => hmac_hex::<Hmac<Sha512>>(&self.skey, &v2),
            Version::V5 => {
                let empty = hex::encode(Sha512::digest(b""));
                hmac_hex::<Hmac<Sha512>>(&self.skey, &format!("{v2}\n{empty}\n{empty}"))
            }
        }
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        let date = self.date();
        let signature = self.signature(&date, path, params);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{signature}", self.ikey));
        let mut request = self
            .http
            .get(format!("{}{path}?{query}", self.base))
            .header("Authorization", format!("Basic {auth}"));
        if self.send_date {
            request = request.header("Date", date);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let body = response.json().await.unwrap();
        Reply {
            status,
            body,
            retry_after,
        }
    }

    /// Reads every page of a list the way Duo's clients do: follow `next_offset`.
    async fn read_all(&self, path: &str, limit: &str) -> (Vec<Value>, usize) {
        let mut rows = Vec::new();
        let mut offset = "0".to_owned();
        let mut pages = 0;
        loop {
            let reply = self
                .get(path, &[("limit", limit), ("offset", &offset)])
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            pages += 1;
            rows.extend(reply.body["response"].as_array().unwrap().iter().cloned());
            match reply.body["metadata"].get("next_offset") {
                Some(Value::Number(n)) => offset = n.to_string(),
                None | Some(Value::Null) => return (rows, pages),
                Some(other) => panic!("next_offset is {other}"),
            }
        }
    }
}

async fn start(dataset: DuoDataset) -> DuoSim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    DuoSim::start(DuoSimConfig::demo(), dataset).await.unwrap()
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["user_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn users_come_in_duo_envelopes_with_paging_metadata() {
    let data = sample();
    let sim = start(data.clone()).await;
    let client = Client::new(&sim, Version::V5);

    let first = client
        .get("/admin/v1/users", &[("limit", "10"), ("offset", "0")])
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["stat"], "OK");
    assert_eq!(first.body["response"].as_array().unwrap().len(), 10);
    assert_eq!(first.body["metadata"]["total_objects"], 25);
    assert_eq!(first.body["metadata"]["next_offset"], 10);
    assert_eq!(first.body["metadata"]["prev_offset"], Value::Null);

    let last = client
        .get("/admin/v1/users", &[("limit", "10"), ("offset", "20")])
        .await;
    assert_eq!(last.body["response"].as_array().unwrap().len(), 5);
    let metadata = last.body["metadata"].as_object().unwrap();
    assert!(!metadata.contains_key("next_offset"), "{metadata:?}");
    assert_eq!(metadata["prev_offset"], 10);

    let (rows, pages) = client.read_all("/admin/v1/users", "10").await;
    assert_eq!(pages, 3);
    let expected: Vec<String> = data.users.iter().map(|u| u.user_id.clone()).collect();
    assert_eq!(ids(&rows), expected);

    // The full user object of §6.
    let alice = &rows[0];
    for field in [
        "user_id",
        "username",
        "realname",
        "firstname",
        "lastname",
        "email",
        "status",
        "notes",
        "created",
        "last_login",
        "is_enrolled",
        "alias1",
        "alias2",
        "alias3",
        "alias4",
        "aliases",
        "custom_attributes",
        "groups",
        "phones",
        "tokens",
        "u2ftokens",
        "webauthncredentials",
    ] {
        assert!(
            alice.get(field).is_some(),
            "user object lacks {field}: {alice}"
        );
    }
    let groups: Vec<&str> = alice["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["Sales", "Sales Managers"]);
    assert_eq!(alice["phones"][0]["type"], "Mobile");
    assert_eq!(sim.count("/admin/v1/users"), 5);
}

#[tokio::test]
async fn default_and_maximum_limits_hold_and_an_empty_query_is_accepted() {
    let sim = start(generate(1_000, 150, 3)).await;
    let client = Client::new(&sim, Version::V2Sha512);

    let plain = client.get("/admin/v1/users", &[]).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(plain.body["response"].as_array().unwrap().len(), 100);
    assert!(sim.request_log()[0].query.is_empty());

    let capped = client.get("/admin/v1/users", &[("limit", "1000")]).await;
    assert_eq!(capped.body["response"].as_array().unwrap().len(), 300);
    assert_eq!(capped.body["metadata"]["next_offset"], 300);

    let groups = client.get("/admin/v1/groups", &[("limit", "500")]).await;
    assert_eq!(groups.body["response"].as_array().unwrap().len(), 100);
    assert_eq!(groups.body["metadata"]["total_objects"], 150);

    let bad = client.get("/admin/v1/users", &[("limit", "ten")]).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["code"], 40003);
    assert_eq!(bad.body["message_detail"], "limit");
}

#[tokio::test]
async fn short_pages_return_fewer_rows_than_asked_and_next_offset_still_leads_through() {
    let sim = start(sample()).await;
    let client = Client::new(&sim, Version::V5);
    sim.knobs().short_pages(7);

    let page = client
        .get("/admin/v1/users", &[("limit", "100"), ("offset", "0")])
        .await;
    assert_eq!(page.body["response"].as_array().unwrap().len(), 7);
    assert_eq!(page.body["metadata"]["next_offset"], 7);

    let (rows, pages) = client.read_all("/admin/v1/users", "100").await;
    assert_eq!((rows.len(), pages), (25, 4));

    sim.knobs().full_pages();
    let (_, pages) = client.read_all("/admin/v1/users", "100").await;
    assert_eq!(pages, 1);
}

#[tokio::test]
async fn every_signature_version_is_accepted_with_awkward_parameters() {
    let mut data = sample();
    data.users[0].email = "a+b c~d/é*@example.com".to_owned();
    let sim = start(data).await;
    for version in [Version::V2Sha1, Version::V2Sha512, Version::V5] {
        let client = Client::new(&sim, version);
        let reply = client
            .get("/admin/v1/users", &[("email", "a+b c~d/é*@example.com")])
            .await;
        assert_eq!(reply.status, 200, "{version:?}: {}", reply.body);
        let rows = reply.body["response"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{version:?}");
        assert_eq!(rows[0]["username"], "alice.anderson");
    }
    let schemes: Vec<_> = sim.request_log().iter().map(|r| r.signature).collect();
    assert_eq!(
        schemes,
        [
            Some(SignatureScheme::V2Sha1),
            Some(SignatureScheme::V2Sha512),
            Some(SignatureScheme::V5)
        ]
    );
}

#[tokio::test]
async fn bad_credentials_and_stale_dates_are_refused_and_logged() {
    let sim = start(sample()).await;
    let good = Client::new(&sim, Version::V5);

    let wrong_key = Client {
        skey: "not-the-secret".to_owned(),
        ..Client::new(&sim, Version::V5)
    };
    let reply = wrong_key.get("/admin/v1/users", &[]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.body,
        serde_json::json!({"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"})
    );

    let wrong_ikey = Client {
        ikey: "DIXXXXXXXXXXXXXXXXXX".to_owned(),
        ..Client::new(&sim, Version::V2Sha1)
    };
    assert_eq!(
        wrong_ikey.get("/admin/v1/users", &[]).await.body["code"],
        40101
    );

    let stale = Client {
        date_shift: -3_600,
        ..Client::new(&sim, Version::V5)
    };
    let reply = stale.get("/admin/v1/users", &[]).await;
    assert_eq!(
        (reply.status, reply.body["code"].as_u64()),
        (401, Some(40106))
    );
    assert_eq!(reply.body["message"], "Request date is stale");

    let future = Client {
        date_shift: 3_600,
        ..Client::new(&sim, Version::V2Sha512)
    };
    assert_eq!(future.get("/admin/v1/users", &[]).await.body["code"], 40106);

    let undated = Client {
        send_date: false,
        ..Client::new(&sim, Version::V5)
    };
    assert_eq!(
        undated.get("/admin/v1/users", &[]).await.body["code"],
        40105
    );

    // A signature over other parameters than those sent.
    let date = good.date();
    let signature = good.signature(&date, "/admin/v1/users", &[("limit", "5")]);
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{signature}", good.ikey));
    let response = reqwest::Client::new()
        .get(format!("{}/admin/v1/users?limit=6", good.base))
        .header("Authorization", format!("Basic {auth}"))
        .header("Date", date)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let unsigned = reqwest::Client::new()
        .get(format!("{}/admin/v1/users", good.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    assert_eq!(good.get("/admin/v1/users", &[]).await.status, 200);
    let statuses: Vec<u16> = sim.request_log().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 401, 401, 200]);
    let signed = sim
        .request_log()
        .iter()
        .filter(|r| r.signature.is_some())
        .count();
    assert_eq!(signed, 1, "only the good request counts as signed");
}

#[tokio::test]
async fn rate_limit_and_server_error_knobs_answer_like_duo() {
    let sim = start(sample()).await;
    let client = Client::new(&sim, Version::V5);

    sim.knobs().rate_limit_next(2);
    for _ in 0..2 {
        let reply = client.get("/admin/v1/groups", &[]).await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.body["code"], 42901);
        assert_eq!(reply.body["stat"], "FAIL");
        assert!(!reply.retry_after, "Duo sends no Retry-After");
    }
    assert_eq!(client.get("/admin/v1/groups", &[]).await.status, 200);

    sim.knobs().fail_next(1, 500).rate_limit_next(0);
    let reply = client.get("/admin/v1/groups", &[]).await;
    assert_eq!(
        (reply.status, reply.body["code"].as_u64()),
        (500, Some(50001))
    );
    assert_eq!(reply.body["message"], "Unknown internal server error");

    sim.knobs().fail_next(2, 503);
    assert_eq!(
        client.get("/admin/v1/groups", &[]).await.body["code"],
        50301
    );
    assert_eq!(client.get("/admin/v1/groups", &[]).await.status, 503);
    assert_eq!(client.get("/admin/v1/groups", &[]).await.status, 200);
    assert_eq!(sim.count("/admin/v1/groups"), 7);
}

#[tokio::test]
async fn latency_knob_delays_answers() {
    let sim = start(sample()).await;
    let client = Client::new(&sim, Version::V5);
    sim.knobs().latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(client.get("/admin/v1/groups", &[]).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_user_inserted_between_pages_shifts_offsets() {
    let data = sample();
    let sim = start(data.clone()).await;
    let client = Client::new(&sim, Version::V5);
    let newcomer = DuoUser {
        user_id: "DUNEWCOMER0000000001".to_owned(),
        username: "new.comer".to_owned(),
        status: "active".to_owned(),
        ..DuoUser::default()
    };
    sim.knobs().edit_after_users_page(1, move |d| {
        d.users.insert(0, newcomer);
        d.users[5].username = "renamed.mid.read".to_owned();
    });

    let (rows, pages) = client.read_all("/admin/v1/users", "10").await;
    assert_eq!(pages, 3);
    // The tenth user of the first page comes again at the top of the second.
    assert_eq!(rows[9]["user_id"], rows[10]["user_id"]);
    assert_eq!(rows.len(), 26);
    assert!(!ids(&rows).contains(&"DUNEWCOMER0000000001".to_owned()));

    // A second read sees the new state.
    let (rows, _) = client.read_all("/admin/v1/users", "10").await;
    assert_eq!(rows[0]["username"], "new.comer");
    assert_eq!(rows[5]["username"], "renamed.mid.read");
}

#[tokio::test]
async fn single_objects_memberships_and_integrations_are_served() {
    let data = sample();
    let sim = start(data.clone()).await;
    let client = Client::new(&sim, Version::V2Sha1);
    let alice = &data.users[0];
    let sales = data.group_named("Sales").unwrap();

    let user = client
        .get(&format!("/admin/v1/users/{}", alice.user_id), &[])
        .await;
    assert_eq!(user.body["response"]["username"], "alice.anderson");
    assert!(user.body.get("metadata").is_none());

    let groups = client
        .get(&format!("/admin/v1/users/{}/groups", alice.user_id), &[])
        .await;
    assert_eq!(groups.body["response"][0]["name"], "Sales");

    for version in ["v1", "v2"] {
        let group = client
            .get(&format!("/admin/{version}/groups/{}", sales.group_id), &[])
            .await;
        assert_eq!(group.body["response"]["name"], "Sales");
    }

    let (members, _) = client
        .read_all(&format!("/admin/v2/groups/{}/users", sales.group_id), "2")
        .await;
    let expected: Vec<&str> = data
        .users
        .iter()
        .filter(|u| u.groups.contains(&sales.group_id))
        .map(|u| u.username.as_str())
        .collect();
    let got: Vec<&str> = members
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);

    let by_alias = client
        .get("/admin/v1/users", &[("username", "ddiaz")])
        .await;
    assert_eq!(by_alias.body["response"][0]["username"], "david.diaz");

    let ikey = &data.integrations[0].integration_key;
    let integration = client
        .get(&format!("/admin/v1/integrations/{ikey}"), &[])
        .await;
    assert_eq!(
        integration.body["response"]["groups_allowed"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let missing = client
        .get("/admin/v1/users/DUNOSUCHUSER00000000", &[])
        .await;
    assert_eq!(
        (missing.status, missing.body["code"].as_u64()),
        (404, Some(40401))
    );
    let nowhere = client.get("/admin/v9/nothing", &[]).await;
    assert_eq!(nowhere.status, 404);
}

#[tokio::test]
async fn live_dataset_edits_show_in_the_next_read() {
    let data = sample();
    let sim = start(data.clone()).await;
    let client = Client::new(&sim, Version::V5);
    let handle = sim.dataset();
    let bob = &data.users[1];
    let support = data.group_named("Support").unwrap();
    let sales = data.group_named("Sales").unwrap();

    handle.rename_user(&bob.user_id, "robert.baker").unwrap();
    handle.disable_user(&bob.user_id).unwrap();
    handle
        .set_user_email(&bob.user_id, "robert.baker@example.com")
        .unwrap();
    handle
        .move_user(&bob.user_id, &sales.group_id, &support.group_id)
        .unwrap();
    handle
        .rename_group(&support.group_id, "Customer Support")
        .unwrap();
    assert!(handle.rename_user("DUNOSUCHUSER00000000", "x").is_err());

    let user = client
        .get(&format!("/admin/v1/users/{}", bob.user_id), &[])
        .await;
    let user = &user.body["response"];
    assert_eq!(user["username"], "robert.baker");
    assert_eq!(user["status"], "disabled");
    assert_eq!(user["email"], "robert.baker@example.com");
    assert_eq!(user["groups"][0]["name"], "Customer Support");

    handle.remove_group(&support.group_id).unwrap();
    handle.remove_user(&data.users[0].user_id).unwrap();
    let (rows, _) = client.read_all("/admin/v1/users", "100").await;
    assert_eq!(rows.len(), 24);
    assert!(rows.iter().all(|r| {
        r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["name"] != "Customer Support")
    }));
    let members = client
        .get(&format!("/admin/v2/groups/{}/users", support.group_id), &[])
        .await;
    assert_eq!(members.status, 404);
}

/// Just enough of a page to follow it, so the client's parsing does not swamp the figure.
#[derive(serde::Deserialize)]
struct PageShape {
    response: Vec<serde::de::IgnoredAny>,
    metadata: MetadataShape,
}

#[derive(serde::Deserialize)]
struct MetadataShape {
    next_offset: Option<usize>,
}

/// A large directory pages through in ceil(100000 / 300) pages, every user once. How fast is
/// measured by `cargo bench -p scimsync-directory --bench read`, not here: a timed assertion
/// fails on a loaded machine.
#[tokio::test]
async fn a_hundred_thousand_users_read_in_334_pages() {
    let started = Instant::now();
    let data = generate(100_000, 2_000, 11);
    let generated = started.elapsed();
    let sim = start(data).await;
    let client = Client::new(&sim, Version::V5);
    let started = Instant::now();
    let (mut rows, mut pages, mut bytes) = (0, 0, 0);
    let mut offset = 0;
    loop {
        let date = client.date();
        let offset_text = offset.to_string();
        let params = [("limit", "300"), ("offset", offset_text.as_str())];
        let signature = client.signature(&date, "/admin/v1/users", &params);
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{signature}", client.ikey));
        let body = client
            .http
            .get(format!(
                "{}/admin/v1/users?limit=300&offset={offset}",
                client.base
            ))
            .header("Authorization", format!("Basic {auth}"))
            .header("Date", date)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        bytes += body.len();
        let page: PageShape = serde_json::from_slice(&body).unwrap();
        rows += page.response.len();
        pages += 1;
        match page.metadata.next_offset {
            Some(next) => offset = next,
            None => break,
        }
    }
    let read = started.elapsed();
    eprintln!(
        "generated 100,000 users in {generated:?}; read them in {pages} pages ({} MB) in {read:?}",
        bytes / 1_000_000
    );
    assert_eq!((rows, pages), (100_000, 334));
}

#[tokio::test]
async fn a_group_renamed_between_pages_shows_in_the_next_page() {
    let sim = start(generate(10, 250, 5)).await;
    let client = Client::new(&sim, Version::V2Sha1);
    sim.knobs().edit_after_groups_page(1, |d| {
        d.groups[150].name = "Renamed Mid Read".to_owned();
    });
    let (rows, pages) = client.read_all("/admin/v1/groups", "100").await;
    assert_eq!((rows.len(), pages), (250, 3));
    assert_eq!(rows[150]["name"], "Renamed Mid Read");
}

/// Sends a signed POST (v2 form body or v5 JSON body) and returns the status: the emulator
/// serves GETs only, so 405 means the signature was accepted and 401 that it was not.
async fn signed_post(sim: &DuoSim, version: Version, skey: &str) -> u16 {
    let path = "/admin/v1/users";
    let date = httpdate::fmt_http_date(SystemTime::now());
    let host = sim.host();
    let params = [("realname", "José Q"), ("username", "jose+q")];
    let (content_type, body, canonical) = match version {
        Version::V5 => {
            let body = r#"{"realname":"José Q","username":"jose+q"}"#.to_owned();
            let canonical = format!(
                "{date}\nPOST\n{host}\n{path}\n\n{}\n{}",
                hex::encode(Sha512::digest(body.as_bytes())),
                hex::encode(Sha512::digest(b""))
            );
            ("application/json", body, canonical)
        }
        Version::V2Sha1 | Version::V2Sha512 => {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish();
            let canonical =
                format!("{date}\nPOST\n{host}\n{path}\nrealname=Jos%C3%A9%20Q&username=jose%2Bq");
            ("application/x-www-form-urlencoded", body, canonical)
        }
    };
    let signature = match version {
        Version::V2Sha1 => hmac_hex::<Hmac<Sha1>>(skey, &canonical),
        _ => hmac_hex::<Hmac<Sha512>>(skey, &canonical),
    };
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{signature}", sim.integration_key()));
    reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .header("Authorization", format!("Basic {auth}"))
        .header("Date", date)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn signed_form_and_json_bodies_are_verified() {
    let sim = start(sample()).await;
    for version in [Version::V2Sha1, Version::V2Sha512, Version::V5] {
        assert_eq!(
            signed_post(&sim, version, sim.secret_key()).await,
            405,
            "{version:?}"
        );
        assert_eq!(
            signed_post(&sim, version, "wrong").await,
            401,
            "{version:?}"
        );
    }
}
