//! Duo's JSON shapes (fact sheet §4, §6, §7): envelopes and user, group, phone objects.
//!
//! Objects borrow from the dataset and are serialised straight to text under the read lock,
//! so a page costs only its own rows.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use crate::generator::{DuoGroup, DuoIntegration, DuoPhone, DuoUser};

use super::directory::Directory;

/// Invariant: the shapes here hold only strings, numbers, bools, lists and string-keyed maps,
/// which serde_json always serialises.
fn to_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[derive(Serialize)]
struct Ok<T> {
    stat: &'static str,
    response: T,
}

/// `{"stat":"OK","response":...}`.
pub(crate) fn ok(response: impl Serialize) -> String {
    to_text(&Ok {
        stat: "OK",
        response,
    })
}

#[derive(Serialize)]
struct Metadata {
    total_objects: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<usize>,
    prev_offset: Option<usize>,
}

#[derive(Serialize)]
struct Paged<T> {
    stat: &'static str,
    response: Vec<T>,
    metadata: Metadata,
}

/// A list page. `next_offset` appears only while rows remain; `prev_offset` is null on the
/// first page.
pub(crate) fn paged<T: Serialize>(
    rows: Vec<T>,
    total: usize,
    offset: usize,
    limit: usize,
    next: Option<usize>,
) -> String {
    to_text(&Paged {
        stat: "OK",
        response: rows,
        metadata: Metadata {
            total_objects: total,
            next_offset: next,
            prev_offset: (offset > 0).then(|| offset.saturating_sub(limit)),
        },
    })
}

/// `{"stat":"FAIL","code":...,"message":...}` plus `message_detail` when given.
pub(crate) fn fail(code: u32, message: &str, detail: Option<&str>) -> String {
    let mut body = json!({ "stat": "FAIL", "code": code, "message": message });
    if let (Some(detail), Some(map)) = (detail, body.as_object_mut()) {
        map.insert("message_detail".into(), json!(detail));
    }
    body.to_string()
}

#[derive(Serialize)]
pub(crate) struct GroupObject<'a> {
    group_id: &'a str,
    name: &'a str,
    desc: &'a str,
    status: &'a str,
    push_enabled: bool,
    sms_enabled: bool,
    voice_enabled: bool,
    mobile_otp_enabled: bool,
}

pub(crate) fn group(group: &DuoGroup) -> GroupObject<'_> {
    GroupObject {
        group_id: &group.group_id,
        name: &group.name,
        desc: &group.desc,
        status: &group.status,
        push_enabled: true,
        sms_enabled: true,
        voice_enabled: true,
        mobile_otp_enabled: true,
    }
}

#[derive(Serialize)]
pub(crate) struct PhoneObject<'a> {
    phone_id: &'a str,
    number: &'a str,
    extension: &'a str,
    name: &'a str,
    r#type: &'a str,
    platform: &'a str,
    model: &'static str,
    capabilities: &'static [&'static str],
    activated: bool,
    sms_passcodes_sent: bool,
    last_seen: &'static str,
    predelay: Option<&'static str>,
    postdelay: Option<&'static str>,
    encrypted: &'static str,
    fingerprint: &'static str,
    screenlock: &'static str,
    tampered: &'static str,
}

pub(crate) fn phone(phone: &DuoPhone) -> PhoneObject<'_> {
    let mobile = phone.r#type == "Mobile";
    PhoneObject {
        phone_id: &phone.phone_id,
        number: &phone.number,
        extension: &phone.extension,
        name: &phone.name,
        r#type: &phone.r#type,
        platform: &phone.platform,
        model: "Unknown",
        capabilities: if mobile {
            &["auto", "push", "sms", "phone", "mobile_otp"]
        } else {
            &["phone"]
        },
        activated: phone.activated,
        sms_passcodes_sent: false,
        last_seen: "",
        predelay: None,
        postdelay: None,
        encrypted: "",
        fingerprint: "",
        screenlock: "",
        tampered: "",
    }
}

/// The full user object of `GET /admin/v1/users` (fact sheet §6).
#[derive(Serialize)]
pub(crate) struct UserObject<'a> {
    user_id: &'a str,
    username: &'a str,
    realname: &'a str,
    firstname: &'a str,
    lastname: &'a str,
    email: &'a str,
    status: &'a str,
    notes: &'a str,
    created: i64,
    last_login: Option<i64>,
    last_directory_sync: Option<i64>,
    is_enrolled: bool,
    lockout_reason: Option<&'static str>,
    alias1: Option<&'a str>,
    alias2: Option<&'a str>,
    alias3: Option<&'a str>,
    alias4: Option<&'a str>,
    aliases: &'a BTreeMap<String, String>,
    custom_attributes: &'a BTreeMap<String, String>,
    groups: Vec<GroupObject<'a>>,
    phones: Vec<PhoneObject<'a>>,
    tokens: [(); 0],
    u2ftokens: [(); 0],
    webauthncredentials: [(); 0],
}

/// The user object, with its group ids resolved to group objects.
pub(crate) fn user<'a>(user: &'a DuoUser, directory: &'a Directory) -> UserObject<'a> {
    let alias = |n: &str| user.aliases.get(n).map(String::as_str);
    UserObject {
        user_id: &user.user_id,
        username: &user.username,
        realname: &user.realname,
        firstname: &user.firstname,
        lastname: &user.lastname,
        email: &user.email,
        status: &user.status,
        notes: &user.notes,
        created: user.created,
        last_login: user.last_login,
        last_directory_sync: None,
        is_enrolled: user.is_enrolled,
        lockout_reason: (user.status == "locked out").then_some("Failed Attempts"),
        alias1: alias("alias1"),
        alias2: alias("alias2"),
        alias3: alias("alias3"),
        alias4: alias("alias4"),
        aliases: &user.aliases,
        custom_attributes: &user.custom_attributes,
        groups: user
            .groups
            .iter()
            .filter_map(|id| directory.group(id))
            .map(group)
            .collect(),
        phones: user.phones.iter().map(phone).collect(),
        tokens: [],
        u2ftokens: [],
        webauthncredentials: [],
    }
}

/// A member row of `GET /admin/v2/groups/{id}/users` (believed to be id and username,
/// fact sheet §7).
#[derive(Serialize)]
pub(crate) struct MemberObject<'a> {
    user_id: &'a str,
    username: &'a str,
}

pub(crate) fn member(user: &DuoUser) -> MemberObject<'_> {
    MemberObject {
        user_id: &user.user_id,
        username: &user.username,
    }
}

#[derive(Serialize)]
pub(crate) struct IntegrationObject<'a> {
    integration_key: &'a str,
    name: &'a str,
    r#type: &'static str,
    /// Group ids (whether Duo lists ids or group objects here is unconfirmed).
    groups_allowed: &'a [String],
}

pub(crate) fn integration(integration: &DuoIntegration) -> IntegrationObject<'_> {
    IntegrationObject {
        integration_key: &integration.integration_key,
        name: &integration.name,
        r#type: "sso-generic",
        groups_allowed: &integration.groups_allowed,
    }
}
