//! Duo's JSON shapes (fact sheet §4, §6, §7): envelopes and user, group, phone objects.

use serde_json::{Map, Value, json};

use crate::generator::{DuoGroup, DuoIntegration, DuoPhone, DuoUser};

use super::directory::Directory;

/// `{"stat":"OK","response":...}`.
pub(crate) fn ok(response: Value) -> Value {
    json!({ "stat": "OK", "response": response })
}

/// Paging metadata: `next_offset` only while rows remain; `prev_offset` null on page one.
pub(crate) fn paged(
    rows: Vec<Value>,
    total: usize,
    offset: usize,
    limit: usize,
    next: Option<usize>,
) -> Value {
    let mut metadata = Map::new();
    metadata.insert("total_objects".into(), json!(total));
    if let Some(next) = next {
        metadata.insert("next_offset".into(), json!(next));
    }
    let prev = (offset > 0).then(|| offset.saturating_sub(limit));
    metadata.insert("prev_offset".into(), json!(prev));
    json!({ "stat": "OK", "response": rows, "metadata": metadata })
}

/// `{"stat":"FAIL","code":...,"message":...}` plus `message_detail` when given.
pub(crate) fn fail(code: u32, message: &str, detail: Option<&str>) -> Value {
    let mut body = json!({ "stat": "FAIL", "code": code, "message": message });
    if let (Some(detail), Some(map)) = (detail, body.as_object_mut()) {
        map.insert("message_detail".into(), json!(detail));
    }
    body
}

pub(crate) fn group(group: &DuoGroup) -> Value {
    json!({
        "group_id": group.group_id,
        "name": group.name,
        "desc": group.desc,
        "status": group.status,
        "push_enabled": true,
        "sms_enabled": true,
        "voice_enabled": true,
        "mobile_otp_enabled": true,
    })
}

pub(crate) fn phone(phone: &DuoPhone) -> Value {
    let mobile = phone.r#type == "Mobile";
    let capabilities: Vec<&str> = if mobile {
        vec!["auto", "push", "sms", "phone", "mobile_otp"]
    } else {
        vec!["phone"]
    };
    json!({
        "phone_id": phone.phone_id,
        "number": phone.number,
        "extension": phone.extension,
        "name": phone.name,
        "type": phone.r#type,
        "platform": phone.platform,
        "model": "Unknown",
        "capabilities": capabilities,
        "activated": phone.activated,
        "sms_passcodes_sent": false,
        "last_seen": "",
        "predelay": null,
        "postdelay": null,
        "encrypted": "",
        "fingerprint": "",
        "screenlock": "",
        "tampered": "",
    })
}

/// The full user object of `GET /admin/v1/users`, with group objects resolved.
pub(crate) fn user(user: &DuoUser, directory: &Directory) -> Value {
    let groups: Vec<Value> = user
        .groups
        .iter()
        .filter_map(|id| directory.group(id))
        .map(group)
        .collect();
    let mut body = json!({
        "user_id": user.user_id,
        "username": user.username,
        "realname": user.realname,
        "firstname": user.firstname,
        "lastname": user.lastname,
        "email": user.email,
        "status": user.status,
        "notes": user.notes,
        "created": user.created,
        "last_login": user.last_login,
        "last_directory_sync": null,
        "is_enrolled": user.is_enrolled,
        "lockout_reason": if user.status == "locked out" { json!("Failed Attempts") } else { Value::Null },
        "aliases": user.aliases,
        "custom_attributes": user.custom_attributes,
        "groups": groups,
        "phones": user.phones.iter().map(phone).collect::<Vec<_>>(),
        "tokens": [],
        "u2ftokens": [],
        "webauthncredentials": [],
    });
    if let Some(map) = body.as_object_mut() {
        for n in 1..=4 {
            let key = format!("alias{n}");
            let value = user.aliases.get(&key).map_or(Value::Null, |a| json!(a));
            map.insert(key, value);
        }
    }
    body
}

/// A member row of `GET /admin/v2/groups/{id}/users` (believed to be id and username).
pub(crate) fn member(user: &DuoUser) -> Value {
    json!({ "user_id": user.user_id, "username": user.username })
}

pub(crate) fn integration(integration: &DuoIntegration) -> Value {
    json!({
        "integration_key": integration.integration_key,
        "name": integration.name,
        "type": "sso-generic",
        "groups_allowed": integration.groups_allowed,
    })
}
