//! HTTP handlers: the token endpoint and the SCIM API.

use super::errors::{SimError, not_found};
use super::state::{State as SimState, TokenInfo};
use super::{BurstKind, ClientKind, LoggedRequest, Shared, SimMode};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

fn json_response(status: u16, body: &Value) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        400,
        &json!({"error": error, "error_description": description}),
    )
}

/// `POST /services/oauth2/token`.
pub async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut id = field("client_id");
    let mut secret = field("client_secret");
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim())
        && let Ok(text) = String::from_utf8(decoded)
        && let Some((i, s)) = text.split_once(':')
    {
        let dec = |x: &str| {
            url::form_urlencoded::parse(format!("a={x}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        id = dec(i);
        secret = dec(s);
    }
    let log = |st: &mut SimState, status: u16| {
        st.log.push(LoggedRequest {
            method: "POST".into(),
            path: "/services/oauth2/token".into(),
            object: None,
            status,
            applied: false,
            body: String::new(),
            at: shared.started.elapsed(),
        });
    };
    let mut st = shared.lock();
    if field("grant_type").as_deref() != Some("client_credentials") {
        log(&mut st, 400);
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    let Some(client) = shared
        .config
        .clients
        .iter()
        .find(|c| Some(&c.client_id) == id.as_ref())
    else {
        log(&mut st, 400);
        return oauth_error("invalid_client_id", "client identifier invalid");
    };
    if Some(&client.client_secret) != secret.as_ref() {
        log(&mut st, 400);
        return oauth_error("invalid_client", "invalid client credentials");
    }
    if client.kind == ClientKind::NoRunAsUser {
        log(&mut st, 400);
        return oauth_error("invalid_grant", "no client credentials user enabled");
    }
    let token = format!("00D5g000004SimAAA!{:032x}", rand::random::<u128>());
    st.tokens.insert(
        token.clone(),
        TokenInfo {
            kind: client.kind,
            valid: true,
        },
    );
    st.tokens_issued += 1;
    log(&mut st, 200);
    let origin = format!(
        "http://{}",
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );
    let issued = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    json_response(
        200,
        &json!({
            "access_token": token,
            "signature": "c2ltdWxhdGVkLXNpZ25hdHVyZQ==",
            "scope": if client.kind == ClientKind::NoApiScope { "chatter_api" } else { "api" },
            "instance_url": origin,
            "id": format!("{origin}/id/00D5g000004SimAAA/0055g00000SimRunAs"),
            "token_type": "Bearer",
            "issued_at": issued.to_string(),
        }),
    )
}

/// The token endpoint of login.salesforce.com, which refuses client credentials.
pub async fn login_domain_token(State(shared): State<Arc<Shared>>) -> Response {
    shared.lock().log.push(LoggedRequest {
        method: "POST".into(),
        path: "/_login/services/oauth2/token".into(),
        object: None,
        status: 400,
        applied: false,
        body: String::new(),
        at: shared.started.elapsed(),
    });
    oauth_error("invalid_grant", "request not supported on this domain")
}

/// A response whose body fails mid-way: the client sees the connection drop.
fn dropped() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "dropped by the emulator",
        ))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// What the fault knobs decide for this request, before any handling.
enum Fault {
    None,
    Respond(Response),
}

fn sf_limit_exceeded(mode: SimMode, retry_after: Option<u64>, message: &str) -> Response {
    let err = SimError::new(403, "REQUEST_LIMIT_EXCEEDED", message);
    let (status, body) = match mode {
        SimMode::Salesforce => (403, err.body(mode)),
        SimMode::Generic => (
            429,
            SimError::new(429, "TOO_MANY_REQUESTS", message).body(mode),
        ),
    };
    let mut r = json_response(status, &body);
    if let Some(secs) = retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn faults(shared: &Shared, st: &mut SimState) -> Fault {
    let mode = st.mode;
    if st.knobs.drop_next > 0 {
        st.knobs.drop_next -= 1;
        return Fault::Respond(dropped());
    }
    if let Some((n, status)) = st.knobs.fail_next {
        st.knobs.fail_next = (n > 1).then_some((n - 1, status));
        let err = SimError::new(
            status,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1860233312-48374 (-740188281)",
        );
        return Fault::Respond(json_response(status, &err.body(mode)));
    }
    if let Some((n, retry, kind)) = st.knobs.burst {
        st.knobs.burst = (n > 1).then_some((n - 1, retry, kind));
        return Fault::Respond(match kind {
            BurstKind::TooManyRequests => {
                let mut r = json_response(
                    429,
                    &SimError::new(429, "TOO_MANY_REQUESTS", "Too many requests")
                        .body(SimMode::Generic),
                );
                if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            BurstKind::RequestLimitExceeded => {
                let mut r = json_response(
                    403,
                    &SimError::new(
                        403,
                        "REQUEST_LIMIT_EXCEEDED",
                        "ConcurrentPerOrgLongTxn Limit exceeded.",
                    )
                    .body(SimMode::Salesforce),
                );
                if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
        });
    }
    if let Some(limit) = st.knobs.rps.as_ref()
        && !limit.take()
    {
        st.rate_rejections.push(shared.started.elapsed());
        return Fault::Respond(sf_limit_exceeded(
            mode,
            Some(1),
            "Request rate limit exceeded.",
        ));
    }
    if mode == SimMode::Salesforce && st.api_used >= st.api_limit {
        return Fault::Respond(sf_limit_exceeded(
            mode,
            None,
            "TotalRequests Limit exceeded.",
        ));
    }
    Fault::None
}

/// Every request under `/services/scim/v2`.
pub async fn scim(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = shared.lock().knobs.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let full_path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let mut st = shared.lock();
    let mode = st.mode;
    // Whether the request reached the resources (no fault, authorized): only then can it
    // change anything.
    let mut handled = false;
    let response = match faults(&shared, &mut st) {
        Fault::Respond(r) => r,
        Fault::None => {
            st.api_used += 1;
            match authorize(&st, &headers) {
                Err(r) => *r,
                Ok(()) => {
                    handled = true;
                    let base = format!(
                        "http://{}/services/scim/v2",
                        headers
                            .get(header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("127.0.0.1")
                    );
                    let query: Vec<(String, String)> = uri
                        .query()
                        .map(|q| {
                            url::form_urlencoded::parse(q.as_bytes())
                                .into_owned()
                                .collect()
                        })
                        .unwrap_or_default();
                    let parsed: Result<Value, _> = if body.is_empty() {
                        Ok(Value::Null)
                    } else {
                        serde_json::from_slice(&body)
                    };
                    match parsed {
                        Err(e) => json_response(
                            400,
                            &SimError::new(
                                400,
                                "JSON_PARSER_ERROR",
                                format!("the body is not JSON: {e}"),
                            )
                            .scim("invalidSyntax")
                            .body(mode),
                        ),
                        Ok(json_body) => route(
                            &shared, &mut st, &method, &path, &query, &headers, &json_body, &base,
                        ),
                    }
                }
            }
        }
    };
    let mut response = response;
    if mode == SimMode::Salesforce
        && let Ok(v) = HeaderValue::from_str(&format!("api-usage={}/{}", st.api_used, st.api_limit))
    {
        response.headers_mut().insert("sforce-limit-info", v);
    }
    let status = response.status().as_u16();
    st.log.push(LoggedRequest {
        method: method.to_string(),
        object: logged_object(&path, &body),
        path: full_path,
        status,
        applied: handled && method != Method::GET && (200..300).contains(&status),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: shared.started.elapsed(),
    });
    response
}

/// The object a request concerns: the id in its path (`Users/{id}`, `Groups/{id}`), else the
/// `userName` or `displayName` its body names (a creation).
fn logged_object(path: &str, body: &[u8]) -> Option<String> {
    let mut parts = path.trim_matches('/').split('/');
    let _collection = parts.next();
    if let Some(id) = parts.next().filter(|id| !id.is_empty()) {
        return Some(id.to_owned());
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("userName")
        .or_else(|| v.get("displayName"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn authorize(st: &SimState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let mode = st.mode;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        });
    let info = token.and_then(|t| st.tokens.get(t.trim()));
    match info {
        Some(TokenInfo { valid: true, kind }) => match kind {
            ClientKind::NoApiScope => Err(Box::new(json_response(
                403,
                &SimError::new(403, "API_DISABLED_FOR_ORG", "The REST API is not enabled for this client: the access token lacks the api scope").body(mode),
            ))),
            ClientKind::NoManageUsers => Err(Box::new(json_response(
                401,
                &SimError::new(401, "INSUFFICIENT_ACCESS", "the execution user lacks the Manage Users permission").body(mode),
            ))),
            _ => Ok(()),
        },
        _ => Err(Box::new(json_response(
            401,
            &SimError::new(401, "INVALID_SESSION_ID", "Session expired or invalid").body(mode),
        ))),
    }
}

fn error(mode: SimMode, e: &SimError) -> Response {
    json_response(e.status, &e.body(mode))
}

#[allow(clippy::too_many_arguments)]
fn route(
    shared: &Shared,
    st: &mut SimState,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &Value,
    base: &str,
) -> Response {
    let mode = st.mode;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let q = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let ops = || {
        body.get("Operations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["ServiceProviderConfigs"]) | ("GET", ["ServiceProviderConfig"]) => {
            json_response(200, &service_provider_config(mode))
        }
        ("GET", ["ResourceTypes"]) => {
            let items = super::discovery::resource_types(mode, &st.reading, base);
            let total = items.len();
            json_response(200, &list(items, total, 1))
        }
        ("GET", ["ResourceTypes", id]) => {
            match super::discovery::resource_types(mode, &st.reading, base)
                .into_iter()
                .find(|r| r["id"] == *id)
            {
                Some(r) => json_response(200, &r),
                None => error(mode, &not_found("ResourceType", id)),
            }
        }
        ("GET", ["Schemas"]) => {
            let items = super::discovery::schemas(mode, &st.reading, base);
            let total = items.len();
            json_response(200, &list(items, total, 1))
        }
        ("GET", ["Schemas", id]) => {
            match super::discovery::schemas(mode, &st.reading, base)
                .into_iter()
                .find(|r| r["id"] == *id)
            {
                Some(r) => json_response(200, &r),
                None => error(mode, &not_found("Schema", id)),
            }
        }
        ("GET", ["Users"]) => {
            let filter = match q("filter")
                .map(|f| parse_filter(f, USER_FILTERS, st.reading.filter_or))
                .transpose()
            {
                Ok(f) => f,
                Err(e) => return error(mode, &e),
            };
            let (start, count) =
                match paging(q("startIndex"), q("count"), shared.config.max_page_size) {
                    Ok(p) => p,
                    Err(e) => return error(mode, &e),
                };
            // In id order, from the indexes: no request scans the users.
            let (total, page): (usize, Vec<&super::SimUser>) = match &filter {
                None => (st.user_count(), st.users_page(start - 1, count).collect()),
                Some(clauses) => {
                    let mut ids: BTreeSet<&str> = BTreeSet::new();
                    for (attr, value) in clauses {
                        match attr.as_str() {
                            "username" => ids.extend(st.users_named(value).map(|u| u.id.as_str())),
                            "externalid" => {
                                ids.extend(st.users_with_external_id(value).map(|u| u.id.as_str()))
                            }
                            _ => ids.extend(st.user(value).map(|u| u.id.as_str())),
                        }
                    }
                    let total = ids.len();
                    (
                        total,
                        ids.into_iter()
                            .skip(start - 1)
                            .take(count)
                            .filter_map(|id| st.user(id))
                            .collect(),
                    )
                }
            };
            let page: Vec<Value> = page.into_iter().map(|u| st.user_json(u, base)).collect();
            json_response(200, &list(page, total, start))
        }
        ("GET", ["Users", id]) => match st.user(id) {
            Some(u) => with_etag(mode, json_response(200, &st.user_json(u, base)), u.version),
            None => error(mode, &not_found("User", id)),
        },
        ("POST", ["Users"]) => match st.create_user(body) {
            Ok(id) => {
                let Some(u) = st.user(&id) else {
                    return error(mode, &not_found("User", &id));
                };
                with_etag(mode, json_response(201, &st.user_json(u, base)), u.version)
            }
            Err(e) => error(mode, &e),
        },
        ("PATCH", ["Users", id]) => {
            if let Some(r) = precondition(mode, headers, st.user(id).map(|u| u.version)) {
                return r;
            }
            match st
                .patch_user(id, &ops())
                .and_then(|()| stored(st.user(id), "User", id))
            {
                Ok(u) => with_etag(mode, json_response(200, &st.user_json(u, base)), u.version),
                Err(e) => error(mode, &e),
            }
        }
        ("PUT", ["Users", id]) => {
            // Replace by PATCHing every attribute sent.
            let Some(obj) = body.as_object() else {
                return error(
                    mode,
                    &SimError::new(400, "JSON_PARSER_ERROR", "the body must be an object"),
                );
            };
            let op = json!({"op": "replace", "value": obj});
            match st
                .patch_user(id, &[op])
                .and_then(|()| stored(st.user(id), "User", id))
            {
                Ok(u) => json_response(200, &st.user_json(u, base)),
                Err(e) => error(mode, &e),
            }
        }
        ("DELETE", ["Users", id]) => {
            if st.user(id).is_none() {
                return error(mode, &not_found("User", id));
            }
            if shared.config.delete_deactivates || mode == SimMode::Generic {
                st.deactivate_user(id);
                StatusCode::NO_CONTENT.into_response()
            } else {
                error(
                    mode,
                    &SimError::new(
                        405,
                        "METHOD_NOT_ALLOWED",
                        "Users can't be deleted in Salesforce; deactivate them with active=false",
                    ),
                )
            }
        }
        ("GET", ["Groups"]) => {
            let filter = match q("filter")
                .map(|f| parse_filter(f, GROUP_FILTERS, st.reading.filter_or))
                .transpose()
            {
                Ok(f) => f,
                Err(e) => return error(mode, &e),
            };
            let (start, count) =
                match paging(q("startIndex"), q("count"), shared.config.max_page_size) {
                    Ok(p) => p,
                    Err(e) => return error(mode, &e),
                };
            let (total, page): (usize, Vec<&super::SimGroup>) = match &filter {
                None => (st.group_count(), st.groups_page(start - 1, count).collect()),
                Some(clauses) => {
                    let mut ids: BTreeSet<&str> = BTreeSet::new();
                    for (attr, value) in clauses {
                        if attr == "displayname" {
                            ids.extend(st.groups_named(value).map(|g| g.id.as_str()));
                        } else {
                            ids.extend(st.group(value).map(|g| g.id.as_str()));
                        }
                    }
                    let total = ids.len();
                    (
                        total,
                        ids.into_iter()
                            .skip(start - 1)
                            .take(count)
                            .filter_map(|id| st.group(id))
                            .collect(),
                    )
                }
            };
            let page: Vec<Value> = page.into_iter().map(|g| st.group_json(g, base)).collect();
            json_response(200, &list(page, total, start))
        }
        ("GET", ["Groups", id]) => match st.group(id) {
            Some(g) => with_etag(mode, json_response(200, &st.group_json(g, base)), g.version),
            None => error(mode, &not_found("Group", id)),
        },
        ("POST", ["Groups"]) => match st
            .create_group(body)
            .and_then(|id| stored(st.group(&id), "Group", &id))
        {
            Ok(g) => json_response(201, &st.group_json(g, base)),
            Err(e) => error(mode, &e),
        },
        ("PATCH", ["Groups", id]) => {
            if let Some(r) = precondition(mode, headers, st.group(id).map(|g| g.version)) {
                return r;
            }
            let operations = ops();
            let touches_members = operations.iter().any(|o| {
                o.get("path")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.to_ascii_lowercase().starts_with("members"))
            });
            match st
                .patch_group(id, &operations)
                .and_then(|()| stored(st.group(id), "Group", id))
            {
                Ok(g) if mode == SimMode::Generic && touches_members => {
                    with_etag(mode, StatusCode::NO_CONTENT.into_response(), g.version)
                }
                Ok(g) => with_etag(mode, json_response(200, &st.group_json(g, base)), g.version),
                Err(e) => error(mode, &e),
            }
        }
        ("PUT", ["Groups", id]) => {
            let Some(name) = body.get("displayName").and_then(Value::as_str) else {
                return error(
                    mode,
                    &SimError::new(400, "REQUIRED_FIELD_MISSING", "displayName is required"),
                );
            };
            match st.patch_group(
                id,
                &[json!({"op": "replace", "path": "displayName", "value": name})],
            ) {
                // Salesforce answers a group PUT with an empty body (ConnId's note).
                Ok(()) if mode == SimMode::Salesforce => StatusCode::OK.into_response(),
                Ok(()) => match st.group(id) {
                    Some(g) => json_response(200, &st.group_json(g, base)),
                    None => error(mode, &not_found("Group", id)),
                },
                Err(e) => error(mode, &e),
            }
        }
        ("DELETE", ["Groups", _]) => error(
            mode,
            &SimError::new(
                405,
                "METHOD_NOT_ALLOWED",
                "Groups can't be deleted over SCIM",
            ),
        ),
        // A plain RFC 7644 server has no catalogue (a reading).
        ("GET", ["Entitlements" | "Roles"]) if !st.reading.catalogue_endpoints => error(
            mode,
            &SimError::new(404, "NOT_FOUND", format!("no resource {method} /{path}")),
        ),
        ("GET", ["Entitlements"]) => {
            let licences = st.reading.allows_groups_extension;
            let mut items: Vec<Value> = st
                .catalogue
                .profiles
                .iter()
                .map(|p| {
                    let mut v = json!({
                        "schemas": ["urn:salesforce:schemas:extension:1.0:Entitlement"],
                        "id": p.id, "displayName": p.name, "type": "Profile",
                        "urn:salesforce:schemas:extension:1.0:Entitlement": {"userLicense": p.licence, "allowsGroups": p.allows_groups},
                        "meta": {"resourceType": "Entitlement", "location": format!("{base}/Entitlements/{}", p.id)}
                    });
                    if !licences && let Some(o) = v.as_object_mut() {
                        o.remove("urn:salesforce:schemas:extension:1.0:Entitlement");
                    }
                    v
                })
                .collect();
            items.extend(st.catalogue.permission_sets.iter().map(|p| {
                json!({
                    "schemas": ["urn:salesforce:schemas:extension:1.0:Entitlement"],
                    "id": p.id, "displayName": p.name, "type": "PermissionSet",
                    "meta": {"resourceType": "Entitlement", "location": format!("{base}/Entitlements/{}", p.id)}
                })
            }));
            let total = items.len();
            let (start, count) = match paging(q("startIndex"), q("count"), 200) {
                Ok(p) => p,
                Err(e) => return error(mode, &e),
            };
            let page = items.into_iter().skip(start - 1).take(count).collect();
            json_response(200, &list(page, total, start))
        }
        ("GET", ["Roles"]) => {
            let items: Vec<Value> = st
                .catalogue
                .roles
                .iter()
                .map(|r| json!({"schemas": ["urn:salesforce:schemas:extension:1.0:Role"], "id": r.id, "displayName": r.name, "meta": {"resourceType": "Role"}}))
                .collect();
            let total = items.len();
            json_response(200, &list(items, total, 1))
        }
        _ => error(
            mode,
            &SimError::new(404, "NOT_FOUND", format!("no resource {method} /{path}")),
        ),
    }
}

/// The record just written, which is there (a missing one answers 404 rather than panic).
fn stored<'a, T>(record: Option<&'a T>, kind: &str, id: &str) -> Result<&'a T, SimError> {
    record.ok_or_else(|| not_found(kind, id))
}

fn list(resources: Vec<Value>, total: usize, start: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start,
        "Resources": resources,
    })
}

fn paging(
    start: Option<&str>,
    count: Option<&str>,
    max: usize,
) -> Result<(usize, usize), SimError> {
    let start = match start {
        None => 1,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| {
                SimError::new(
                    400,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    format!("startIndex {s:?} is not a number"),
                )
                .scim("invalidValue")
            })?
            .max(1),
    };
    let count = match count {
        None => max,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| {
                SimError::new(
                    400,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    format!("count {c:?} is not a number"),
                )
                .scim("invalidValue")
            })?
            .min(max),
    };
    Ok((start, count))
}

/// The attributes `GET /Users` filters on (lower-cased).
const USER_FILTERS: &[&str] = &["username", "externalid", "id"];
/// The attributes `GET /Groups` filters on (lower-cased).
const GROUP_FILTERS: &[&str] = &["id", "displayname"];

/// Parses `attr eq "value"` clauses joined by `or` (attr one of `allowed`, compared ignoring
/// case; `eq` and `or` in any case), with `\"` and `\\` escapes in the values. Returns each
/// clause's attribute (lower-cased) and value. Anything else is refused (400 `invalidFilter`),
/// and so is `or` when the reading refuses it (`or_allowed`).
pub(crate) fn parse_filter(
    text: &str,
    allowed: &[&str],
    or_allowed: bool,
) -> Result<Vec<(String, String)>, SimError> {
    let bad = || {
        SimError::new(
            400,
            "INVALID_QUERY_FILTER_OPERATOR",
            format!(
                "unsupported filter {text:?}: use {} with eq and a quoted value{}",
                allowed.join(", "),
                if or_allowed {
                    ", clauses joined by or"
                } else {
                    " (one clause: or is not supported)"
                }
            ),
        )
        .scim("invalidFilter")
    };
    let mut clauses = Vec::new();
    let mut rest = text.trim();
    loop {
        let (attr, after) = rest.split_once(char::is_whitespace).ok_or_else(bad)?;
        let after = after.trim_start();
        let after = after
            .get(..2)
            .filter(|op| op.eq_ignore_ascii_case("eq"))
            .map(|_| &after[2..])
            .ok_or_else(bad)?;
        let inner = after.trim_start().strip_prefix('"').ok_or_else(bad)?;
        let mut value = String::new();
        let mut chars = inner.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.push(chars.next().ok_or_else(bad)?.1),
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(bad)?;
        let attr = attr.to_ascii_lowercase();
        if !allowed.contains(&attr.as_str()) {
            return Err(bad());
        }
        clauses.push((attr, value));
        let tail = inner[end..].trim_start();
        if tail.is_empty() {
            break;
        }
        let next = tail
            .get(..2)
            .filter(|op| op.eq_ignore_ascii_case("or"))
            .map(|_| &tail[2..])
            .filter(|t| t.starts_with(char::is_whitespace))
            .ok_or_else(bad)?;
        if !or_allowed {
            return Err(bad());
        }
        rest = next.trim_start();
    }
    Ok(clauses)
}

fn with_etag(mode: SimMode, mut r: Response, version: u64) -> Response {
    if mode == SimMode::Generic
        && let Ok(v) = HeaderValue::from_str(&format!("W/\"{version}\""))
    {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn precondition(mode: SimMode, headers: &HeaderMap, version: Option<u64>) -> Option<Response> {
    if mode != SimMode::Generic {
        return None;
    }
    let wanted = headers.get(header::IF_MATCH)?.to_str().ok()?;
    let current = format!("W/\"{}\"", version?);
    (wanted != "*" && wanted != current).then(|| {
        json_response(
            412,
            &SimError::new(
                412,
                "PRECONDITION_FAILED",
                format!("the resource is at version {current}, not {wanted}"),
            )
            .body(mode),
        )
    })
}

fn service_provider_config(mode: SimMode) -> Value {
    let generic = mode == SimMode::Generic;
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://help.salesforce.com/HTViewHelpDoc?id=identity_scim_overview.htm",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": 200},
        "changePassword": {"supported": !generic},
        "sort": {"supported": false},
        "etag": {"supported": generic},
        "authenticationSchemes": [{
            "type": "oauth2",
            "name": "OAuth v2.0",
            "description": "Authentication Scheme using the OAuth Standard",
            "specUri": "http://tools.ietf.org/html/rfc6749"
        }]
    })
}
