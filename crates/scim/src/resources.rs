//! SCIM JSON ↔ the core model: users, groups, the catalogue; and the bodies of requests
//! (create, PATCH) in each dialect.

use crate::config::Dialect;
use crate::constants::{
    ENTERPRISE_SCHEMA, GROUP_SCHEMA, PATCH_OP_SCHEMA, SALESFORCE_ENTITLEMENT_EXTENSION,
    SALESFORCE_USER_EXTENSION, USER_SCHEMA,
};
use scimsync_core::plan::{UserAttributes, UserChanges};
use scimsync_core::target::{
    CatalogueEntry, EmailAddress, EnterpriseFields, Entitlement, PhoneNumber, Profile,
    RoleAssignment, TargetGroup, TargetUser,
};
use scimsync_core::{CompactString, TargetGroupId, TargetUserId};
use serde_json::{Map, Value, json};

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The non-empty string at `key`, held inline when it is short (most values of a user are).
fn owned(v: &Value, key: &str) -> Option<CompactString> {
    str_at(v, key)
        .filter(|s| !s.is_empty())
        .map(CompactString::from)
}

/// [`owned`] as a `String`, for the catalogue (a few hundred entries at most).
fn text(v: &Value, key: &str) -> Option<String> {
    owned(v, key).map(String::from)
}

/// The items of a multi-valued attribute that `item` can read (items without a value are left
/// out), in a list no longer than they need: a snapshot holds one per user and attribute, and
/// collecting from a filter would leave room for four.
fn list_of<T>(v: &Value, key: &str, item: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    let Some(a) = v.get(key).and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(a.len());
    out.extend(a.iter().filter_map(item));
    out.shrink_to_fit();
    out
}

/// A user from the target, with the Federation ID read at `federation` (none when `None`);
/// `Err` names the missing field.
pub(crate) fn user_from_json(
    v: &Value,
    federation: Option<&AttrPath>,
) -> Result<TargetUser, String> {
    let id = owned(v, "id").ok_or("id is missing")?;
    let user_name =
        owned(v, "userName").ok_or_else(|| format!("user {id}: userName is missing"))?;
    let name = v.get("name").unwrap_or(&Value::Null);
    let emails = list_of(v, "emails", |e| {
        Some(EmailAddress {
            value: owned(e, "value")?,
            kind: owned(e, "type"),
            primary: e.get("primary").is_some_and(|p| p == true || p == "true"),
        })
    });
    let phone_numbers = list_of(v, "phoneNumbers", |p| {
        Some(PhoneNumber {
            value: owned(p, "value")?,
            kind: owned(p, "type"),
        })
    });
    let entitlements = list_of(v, "entitlements", |e| {
        Some(Entitlement {
            value: owned(e, "value")?,
            kind: owned(e, "type"),
            display: owned(e, "display"),
        })
    });
    let roles = list_of(v, "roles", |r| {
        Some(RoleAssignment {
            value: owned(r, "value")?,
            display: owned(r, "display"),
        })
    });
    let ent = v.get(ENTERPRISE_SCHEMA).unwrap_or(&Value::Null);
    let active = match v.get("active") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        None => true,
        Some(other) => return Err(format!("user {id}: active is {other}, not a boolean")),
    };
    Ok(TargetUser {
        id: TargetUserId::from(id),
        user_name,
        external_id: owned(v, "externalId"),
        given_name: owned(name, "givenName"),
        family_name: owned(name, "familyName"),
        display_name: owned(v, "displayName"),
        nick_name: owned(v, "nickName"),
        title: owned(v, "title"),
        emails,
        phone_numbers,
        active,
        entitlements,
        roles,
        enterprise: EnterpriseFields {
            employee_number: owned(ent, "employeeNumber"),
            department: owned(ent, "department"),
            division: owned(ent, "division"),
            organization: owned(ent, "organization"),
            cost_center: owned(ent, "costCenter"),
            manager: ent.get("manager").and_then(|m| owned(m, "value")),
        }
        .into(),
        federation_id: federation.and_then(|p| p.read(v)),
    })
}

pub(crate) fn group_from_json(v: &Value) -> Result<TargetGroup, String> {
    let id = owned(v, "id").ok_or("id is missing")?;
    let display_name =
        owned(v, "displayName").ok_or_else(|| format!("group {id}: displayName is missing"))?;
    let members = list_of(v, "members", |m| owned(m, "value").map(TargetUserId::from));
    Ok(TargetGroup {
        id: TargetGroupId::from(id),
        display_name,
        members,
    })
}

/// A profile or a permission set from `/Entitlements`.
pub(crate) enum CatalogueItem {
    Profile(Profile),
    PermissionSet(CatalogueEntry),
}

pub(crate) fn entitlement_from_json(v: &Value) -> Option<CatalogueItem> {
    let id = text(v, "id").or_else(|| text(v, "value"))?;
    let name = text(v, "displayName")
        .or_else(|| text(v, "display"))
        .unwrap_or_else(|| id.clone());
    let kind = str_at(v, "type").unwrap_or_default();
    if kind.eq_ignore_ascii_case("profile") || (kind.is_empty() && id.starts_with("00e")) {
        let ext = v
            .get(SALESFORCE_ENTITLEMENT_EXTENSION)
            .cloned()
            .unwrap_or(Value::Null);
        Some(CatalogueItem::Profile(Profile {
            id,
            name,
            licence: text(&ext, "userLicense"),
            allows_groups: ext
                .get("allowsGroups")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        }))
    } else {
        Some(CatalogueItem::PermissionSet(CatalogueEntry { id, name }))
    }
}

pub(crate) fn role_from_json(v: &Value) -> Option<CatalogueEntry> {
    let id = text(v, "id").or_else(|| text(v, "value"))?;
    let name = text(v, "displayName")
        .or_else(|| text(v, "name"))
        .unwrap_or_else(|| id.clone());
    Some(CatalogueEntry { id, name })
}

fn entitlement_list(profile: Option<&str>, sets: &[CompactString]) -> Value {
    let mut list: Vec<Value> = profile
        .map(|p| json!({"value": p, "type": "Profile"}))
        .into_iter()
        .collect();
    list.extend(
        sets.iter()
            .map(|s| json!({"value": s, "type": "PermissionSet"})),
    );
    Value::Array(list)
}

/// The body of `POST /Users`; the Federation ID goes at `federation`, and nowhere when `None`.
/// Generic targets also get `name.formatted` (given and family names joined), which RFC 7643
/// servers store as given and some require.
pub(crate) fn create_user_body(
    u: &UserAttributes,
    federation: Option<&AttrPath>,
    dialect: Dialect,
) -> Value {
    let mut schemas = vec![json!(USER_SCHEMA)];
    let mut body = Map::new();
    body.insert("userName".into(), json!(u.user_name));
    body.insert("externalId".into(), json!(u.external_id));
    let mut name = Map::new();
    if let Some(g) = &u.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &u.family_name {
        name.insert("familyName".into(), json!(f));
    }
    if dialect == Dialect::Generic {
        let formatted: Vec<&str> = [&u.given_name, &u.family_name]
            .into_iter()
            .filter_map(|n| n.as_deref())
            .collect();
        if !formatted.is_empty() {
            name.insert("formatted".into(), json!(formatted.join(" ")));
        }
    }
    if !name.is_empty() {
        body.insert("name".into(), Value::Object(name));
    }
    if let Some(d) = &u.display_name {
        body.insert("displayName".into(), json!(d));
    }
    if let Some(n) = &u.nick_name {
        body.insert("nickName".into(), json!(n));
    }
    if let Some(t) = &u.title {
        body.insert("title".into(), json!(t));
    }
    // Salesforce's own example sends primary as the string "true"; a boolean is what RFC 7643
    // says and what Salesforce returns.
    body.insert(
        "emails".into(),
        json!([{"type": "work", "primary": true, "value": u.email}]),
    );
    if let Some(p) = &u.work_phone {
        body.insert("phoneNumbers".into(), json!([{"type": "work", "value": p}]));
    }
    body.insert("active".into(), json!(true));
    if u.profile.is_some() || !u.permission_sets.is_empty() {
        body.insert(
            "entitlements".into(),
            entitlement_list(u.profile.as_deref(), &u.permission_sets),
        );
    }
    if let Some(r) = &u.role {
        body.insert("roles".into(), json!([{"value": r}]));
    }
    let ent = enterprise_object(&u.enterprise);
    if !ent.is_empty() {
        schemas.push(json!(ENTERPRISE_SCHEMA));
        body.insert(ENTERPRISE_SCHEMA.into(), Value::Object(ent));
    }
    if let (Some(path), Some(f)) = (federation, &u.federation_id) {
        if let Some(urn) = &path.urn
            && !schemas.iter().any(|s| s == urn.as_str())
        {
            schemas.push(json!(urn));
        }
        set_nested(&mut body, &path.keys(), json!(f));
    }
    body.insert("schemas".into(), Value::Array(schemas));
    Value::Object(body)
}

fn enterprise_object(e: &EnterpriseFields) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("employeeNumber", &e.employee_number),
        ("department", &e.department),
        ("division", &e.division),
        ("organization", &e.organization),
        ("costCenter", &e.cost_center),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Some(mgr) = &e.manager {
        m.insert("manager".into(), json!({"value": mgr}));
    }
    m
}

/// One attribute change, dialect-neutral: `(path, Some(value))` sets, `(path, None)` clears.
/// The Federation ID goes at `federation`, and is left out when `None`.
fn changes_list(c: &UserChanges, federation: Option<&AttrPath>) -> Vec<(String, Option<Value>)> {
    let mut out: Vec<(String, Option<Value>)> = Vec::new();
    let mut put = |path: &str, v: Option<Value>| out.push((path.to_owned(), v));
    if let Some(v) = &c.user_name {
        put("userName", Some(json!(v)));
    }
    if let Some(v) = &c.external_id {
        put("externalId", Some(json!(v)));
    }
    for (path, v) in [
        ("name.givenName", &c.given_name),
        ("name.familyName", &c.family_name),
        ("displayName", &c.display_name),
        ("title", &c.title),
    ] {
        if let Some(v) = v {
            put(path, v.as_ref().map(|s| json!(s)));
        }
    }
    if let Some(v) = &c.nick_name {
        put("nickName", Some(json!(v)));
    }
    if let Some(v) = &c.email {
        put(
            "emails",
            Some(json!([{"type": "work", "primary": true, "value": v}])),
        );
    }
    if let Some(v) = &c.work_phone {
        put(
            "phoneNumbers[type eq \"work\"]",
            v.as_ref().map(|p| json!([{"type": "work", "value": p}])),
        );
    }
    let e = &c.enterprise;
    for (field, v) in [
        ("employeeNumber", &e.employee_number),
        ("department", &e.department),
        ("division", &e.division),
        ("organization", &e.organization),
        ("costCenter", &e.cost_center),
    ] {
        if let Some(v) = v {
            put(
                &format!("{ENTERPRISE_SCHEMA}:{field}"),
                v.as_ref().map(|s| json!(s)),
            );
        }
    }
    if let Some(v) = &e.manager {
        put(
            &format!("{ENTERPRISE_SCHEMA}:manager"),
            v.as_ref().map(|m| json!({"value": m})),
        );
    }
    if let (Some(path), Some(v)) = (federation, &c.federation_id) {
        put(&path.to_string(), v.as_ref().map(|s| json!(s)));
    }
    if let Some(ent) = &c.entitlements {
        put(
            "entitlements",
            Some(entitlement_list(Some(&ent.profile), &ent.permission_sets)),
        );
    }
    if let Some(v) = &c.role {
        put("roles", v.as_ref().map(|r| json!([{"value": r}])));
    }
    if let Some(v) = c.active {
        put("active", Some(json!(v)));
    }
    out
}

/// The PATCH body carrying all of a user's changes in one request.
///
/// Salesforce: one path-less `replace` whose value object holds every attribute set (nested
/// for `name`, the extensions and the work phone), then a `remove` with a path per attribute
/// cleared. Generic: one RFC 7644 operation per attribute, with paths.
pub(crate) fn patch_user_body(
    c: &UserChanges,
    dialect: Dialect,
    federation: Option<&AttrPath>,
) -> Value {
    let list = changes_list(c, federation);
    let mut ops = Vec::new();
    match dialect {
        Dialect::Salesforce => {
            let mut value = Map::new();
            for (path, v) in &list {
                let Some(v) = v else { continue };
                if path.starts_with("phoneNumbers") {
                    value.insert("phoneNumbers".into(), v.clone());
                } else if let Some((urn, field)) = split_urn(path) {
                    let mut keys = vec![urn];
                    keys.extend(field.split('.'));
                    set_nested(&mut value, &keys, v.clone());
                } else {
                    let keys: Vec<&str> = path.split('.').collect();
                    set_nested(&mut value, &keys, v.clone());
                }
            }
            if !value.is_empty() {
                ops.push(json!({"op": "replace", "value": value}));
            }
            for (path, v) in &list {
                if v.is_none() {
                    ops.push(json!({"op": "remove", "path": path}));
                }
            }
        }
        Dialect::Generic => {
            for (path, v) in list {
                match v {
                    Some(v) => {
                        let (path, v) = if path.starts_with("phoneNumbers") {
                            (
                                "phoneNumbers[type eq \"work\"].value".to_owned(),
                                v[0]["value"].clone(),
                            )
                        } else if path == "emails" {
                            (
                                "emails[type eq \"work\"].value".to_owned(),
                                v[0]["value"].clone(),
                            )
                        } else {
                            (path, v)
                        };
                        ops.push(json!({"op": "replace", "path": path, "value": v}));
                    }
                    None => ops.push(json!({"op": "remove", "path": path})),
                }
            }
        }
    }
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

/// `urn:…:User:field` → (`urn:…:User`, `field`).
fn split_urn(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with("urn:") {
        return None;
    }
    let (urn, field) = path.rsplit_once(':')?;
    Some((urn, field))
}

/// The PATCH bodies adding or removing `members` (one batch).
pub(crate) fn members_body(members: &[TargetUserId], add: bool, dialect: Dialect) -> Value {
    let op = if add { "add" } else { "remove" };
    let values: Vec<Value> = members
        .iter()
        .map(|m| json!({"value": m.as_str()}))
        .collect();
    let ops = match dialect {
        Dialect::Salesforce => vec![json!({"op": op, "path": "members", "value": {"members": values}})],
        Dialect::Generic if add => vec![json!({"op": "add", "path": "members", "value": values})],
        Dialect::Generic => members
            .iter()
            .map(|m| json!({"op": "remove", "path": format!("members[value eq {}]", quote(m.as_str()))}))
            .collect(),
    };
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

/// The generic PATCH body changing a group's members: `add` with `value` and `$ref` for each
/// `(id, $ref)` in `adds` (some servers require the reference), and one `remove` per listed
/// member value in `removes`, filtered on the value as the server lists it (some list the
/// userName, not the id, and match the filter only against what they list).
pub(crate) fn generic_members_body(adds: &[(String, String)], removes: &[String]) -> Value {
    let mut ops = Vec::new();
    if !adds.is_empty() {
        let values: Vec<Value> = adds
            .iter()
            .map(|(id, reference)| json!({"value": id, "$ref": reference}))
            .collect();
        ops.push(json!({"op": "add", "path": "members", "value": values}));
    }
    for value in removes {
        ops.push(json!({"op": "remove", "path": format!("members[value eq {}]", quote(value))}));
    }
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

/// Rewrites a generic user body or PATCH body for a target whose `emails` and `phoneNumbers`
/// take only `value`: no `type`/`primary` in the values, and whole-attribute paths instead of
/// `[type eq "work"]` filters. The body of a create also gets `name.formatted` when it is
/// missing (such targets tend to require it).
pub(crate) fn plain_multi_values(body: &mut Value) {
    fn strip(list: &mut Value) {
        if let Some(items) = list.as_array_mut() {
            for item in items {
                if let Some(o) = item.as_object_mut() {
                    o.remove("type");
                    o.remove("primary");
                }
            }
        }
    }
    if let Some(ops) = body.get_mut("Operations").and_then(Value::as_array_mut) {
        for op in ops {
            let Some(path) = op.get("path").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            for attr in ["emails", "phoneNumbers"] {
                if path.starts_with(&format!("{attr}[")) {
                    op["path"] = json!(attr);
                    if let Some(v) = op.get("value").cloned() {
                        op["value"] = if v.is_string() {
                            json!([{"value": v}])
                        } else {
                            v
                        };
                    }
                }
            }
            if let Some(v) = op.get_mut("value") {
                strip(v);
            }
        }
        return;
    }
    for attr in ["emails", "phoneNumbers"] {
        if let Some(v) = body.get_mut(attr) {
            strip(v);
        }
    }
}

pub(crate) fn rename_body(name: &str, dialect: Dialect) -> Value {
    let op = match dialect {
        Dialect::Salesforce => json!({"op": "replace", "value": {"displayName": name}}),
        Dialect::Generic => json!({"op": "replace", "path": "displayName", "value": name}),
    };
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [op]})
}

/// The body of `POST /Groups`; generic targets get an empty `members` list (some require the
/// attribute).
pub(crate) fn create_group_body(name: &str, dialect: Dialect) -> Value {
    match dialect {
        Dialect::Salesforce => json!({"schemas": [GROUP_SCHEMA], "displayName": name}),
        Dialect::Generic => json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": []}),
    }
}

/// Sets `value` at `keys` in `map`, creating (or replacing non-object) objects on the way.
fn set_nested(map: &mut Map<String, Value>, keys: &[&str], value: Value) {
    match keys {
        [] => {}
        [last] => {
            map.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                set_nested(inner, rest, value);
            }
        }
    }
}

/// The value of `key` in `v`, by exact name or else case-insensitively (SCIM attribute names
/// and schema URNs are case-insensitive).
pub(crate) fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let map = v.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Core attributes the Federation ID may not be written to: the matching keys, and what the
/// engine writes from the mapping and the governance rules itself.
const RESERVED_CORE: [&str; 13] = [
    "id",
    "userName",
    "externalId",
    "name",
    "displayName",
    "emails",
    "phoneNumbers",
    "active",
    "entitlements",
    "roles",
    "groups",
    "meta",
    "schemas",
];

/// A SCIM attribute path to one string attribute: `attr`, `attr.sub`, `urn:…:attr` or
/// `urn:…:attr.sub` (RFC 7644 §3.10, without filters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrPath {
    /// The extension schema URN; `None` for the core User schema.
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// Parses a path; the error is a message for the operator.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // `get`: the fifth byte may be inside a character (`urné…`), which is no URN.
        let (urn, rest) = if text.len() > 4
            && text
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        {
            let (urn, rest) = text.rsplit_once(':').unwrap_or((text, ""));
            if urn.eq_ignore_ascii_case(USER_SCHEMA) {
                (None, rest)
            } else {
                (Some(urn.to_owned()), rest)
            }
        } else {
            (None, text)
        };
        let (attr, sub) = match rest.split_once('.') {
            Some((a, s)) => (a, Some(s)),
            None => (rest, None),
        };
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if !plain(attr) || sub.is_some_and(|s| !plain(s)) {
            return Err(format!(
                "{text:?} is not a SCIM attribute path; use an attribute name (nickName), a sub-attribute (name.middleName) or an extension attribute with its schema URN (urn:salesforce:schemas:extension:1.0:User:federationIdentifier)"
            ));
        }
        let name_part = attr.eq_ignore_ascii_case("name")
            && sub.is_some_and(|s| {
                !s.eq_ignore_ascii_case("givenName") && !s.eq_ignore_ascii_case("familyName")
            });
        if urn.is_none()
            && !name_part
            && let Some(reserved) = RESERVED_CORE.iter().find(|r| r.eq_ignore_ascii_case(attr))
        {
            let why = if ["userName", "externalId", "id"].contains(reserved) {
                format!("{reserved} is what scimsync matches accounts on")
            } else {
                format!(
                    "scimsync already writes {reserved} from the mapping or the governance rules"
                )
            };
            return Err(format!(
                "the Federation ID cannot be written to {text:?}: {why}; choose another attribute, or \"off\""
            ));
        }
        Ok(Self {
            urn,
            attr: attr.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }

    /// Salesforce's assumed place: `urn:salesforce:schemas:extension:1.0:User:federationIdentifier`.
    pub fn salesforce() -> Self {
        Self {
            urn: Some(SALESFORCE_USER_EXTENSION.to_owned()),
            attr: "federationIdentifier".to_owned(),
            sub: None,
        }
    }

    /// The object keys from the resource's top level down.
    pub fn keys(&self) -> Vec<&str> {
        self.urn
            .as_deref()
            .into_iter()
            .chain(std::iter::once(self.attr.as_str()))
            .chain(self.sub.as_deref())
            .collect()
    }

    /// The string at this path in a resource, if any (names matched case-insensitively).
    pub fn read(&self, resource: &Value) -> Option<CompactString> {
        let mut at = resource;
        for key in self.keys() {
            at = get_ci(at, key)?;
        }
        at.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(CompactString::from)
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A SCIM filter string literal: quotes and backslashes escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimsync_core::plan::{EnterpriseChanges, EntitlementChange};

    #[test]
    fn a_path_with_a_character_across_its_fourth_byte_is_refused_not_a_panic() {
        // Found by the fuzz bench (config target): `text[..4]` cut `é` in two.
        for text in ["urné😀x", "uré:x", "😀😀"] {
            let err = AttrPath::parse(text).expect_err("not a path");
            assert!(
                err.contains("is not a SCIM attribute path"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn a_user_read_keeps_every_value_in_lists_without_spare_room() {
        let v = json!({
            "id": "005A", "userName": "ada@example.com", "externalId": "DU1",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "displayName": "Ada Lovelace", "nickName": "ada", "title": "Countess",
            "active": "false",
            "emails": [{"value": "ada@example.com", "type": "work", "primary": true},
                       {"type": "home"}],
            "phoneNumbers": [{"value": "+1555", "type": "work"}],
            "entitlements": [{"value": "00e1", "type": "profile", "display": "Standard User"},
                             {"value": "0PS1", "type": "permissionSet"}],
            "roles": [{"value": "00E1", "display": "CEO"}],
            ENTERPRISE_SCHEMA: {"department": "R&D", "manager": {"value": "005B"}}
        });
        let u = user_from_json(&v, None).unwrap();
        assert_eq!(
            (
                u.id.as_str(),
                u.user_name.as_str(),
                u.external_id.as_deref()
            ),
            ("005A", "ada@example.com", Some("DU1"))
        );
        assert_eq!(
            (u.given_name.as_deref(), u.family_name.as_deref()),
            (Some("Ada"), Some("Lovelace"))
        );
        assert!(!u.active);
        assert_eq!(u.emails.len(), 1, "an email without a value is left out");
        assert_eq!(u.work_email(), Some("ada@example.com"));
        assert_eq!(u.work_phone(), Some("+1555"));
        assert_eq!(u.entitlements[0].display.as_deref(), Some("Standard User"));
        assert_eq!(u.entitlements[1].kind.as_deref(), Some("permissionSet"));
        assert_eq!(u.roles[0].value, "00E1");
        assert_eq!(u.enterprise.department.as_deref(), Some("R&D"));
        assert_eq!(u.enterprise.manager.as_deref(), Some("005B"));
        // A snapshot holds one of each list per user: none keeps room for more.
        assert_eq!(u.emails.capacity(), 1);
        assert_eq!(u.phone_numbers.capacity(), 1);
        assert_eq!(u.entitlements.capacity(), 2);
        assert_eq!(u.roles.capacity(), 1);

        let g = group_from_json(&json!({"id": "00G1", "displayName": "Sales",
            "members": [{"value": "005A"}, {"display": "no value"}, {"value": "005B"}]}))
        .unwrap();
        let members: Vec<&str> = g.members.iter().map(TargetUserId::as_str).collect();
        assert_eq!(members, ["005A", "005B"]);
        assert_eq!(g.members.capacity(), 2);
    }

    #[test]
    fn filter_literals_escape_quotes_and_backslashes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    fn changes() -> UserChanges {
        UserChanges {
            given_name: Some(Some("Ada".into())),
            title: Some(None),
            email: Some("ada@new.example.com".into()),
            work_phone: Some(Some("+1555".into())),
            enterprise: EnterpriseChanges {
                department: Some(Some("R&D".into())),
                ..Default::default()
            },
            entitlements: Some(EntitlementChange {
                profile: "00eP".into(),
                profile_changed: true,
                permission_sets: vec!["0PS1".into()],
                added: vec!["0PS1".into()],
                removed: vec![],
            }),
            active: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn salesforce_patch_is_one_pathless_replace_plus_removals() {
        let body = patch_user_body(&changes(), Dialect::Salesforce, None);
        let ops = body["Operations"].as_array().unwrap_or(&Vec::new()).clone();
        assert_eq!(ops.len(), 2, "{body}");
        let v = &ops[0]["value"];
        assert_eq!(ops[0]["op"], "replace");
        assert!(ops[0].get("path").is_none());
        assert_eq!(v["name"]["givenName"], "Ada");
        assert_eq!(v["phoneNumbers"][0]["type"], "work");
        assert_eq!(v[ENTERPRISE_SCHEMA]["department"], "R&D");
        assert_eq!(v["entitlements"][0]["value"], "00eP");
        assert_eq!(v["active"], true);
        assert_eq!(ops[1], json!({"op": "remove", "path": "title"}));
    }

    #[test]
    fn generic_patch_has_a_path_per_attribute() {
        let body = patch_user_body(&changes(), Dialect::Generic, None);
        let paths: Vec<&str> = body["Operations"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["path"].as_str()).collect())
            .unwrap_or_default();
        assert!(paths.contains(&"name.givenName"));
        assert!(paths.contains(&"emails[type eq \"work\"].value"));
        assert!(paths.contains(&"phoneNumbers[type eq \"work\"].value"));
        assert!(
            paths
                .contains(&"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
        );
    }

    #[test]
    fn plain_targets_get_plain_emails_and_phones() {
        let mut body = patch_user_body(&changes(), Dialect::Generic, None);
        plain_multi_values(&mut body);
        let ops = body["Operations"].as_array().cloned().unwrap_or_default();
        let email = ops.iter().find(|o| o["path"] == "emails");
        assert_eq!(
            email.map(|o| o["value"].clone()),
            Some(json!([{"value": "ada@new.example.com"}]))
        );
        assert!(ops.iter().any(|o| o["path"] == "phoneNumbers"));
        let mut create = json!({"emails": [{"type": "work", "primary": true, "value": "a@x"}]});
        plain_multi_values(&mut create);
        assert_eq!(create["emails"], json!([{"value": "a@x"}]));
    }

    #[test]
    fn generic_member_bodies_carry_refs_and_filter_on_listed_values() {
        let body = generic_members_body(
            &[("u1".into(), "http://t/Users/u1".into())],
            &["ada@example.com".into()],
        );
        assert_eq!(
            body["Operations"][0]["value"][0]["$ref"],
            "http://t/Users/u1"
        );
        assert_eq!(
            body["Operations"][1]["path"],
            "members[value eq \"ada@example.com\"]"
        );
    }

    #[test]
    fn member_bodies_in_both_dialects() {
        let ids = [TargetUserId::from("005A"), TargetUserId::from("005B")];
        assert_eq!(
            members_body(&ids, true, Dialect::Salesforce)["Operations"][0]["value"],
            json!({"members": [{"value": "005A"}, {"value": "005B"}]})
        );
        let generic_remove = members_body(&ids, false, Dialect::Generic);
        assert_eq!(
            generic_remove["Operations"][1]["path"],
            "members[value eq \"005B\"]"
        );
        assert_eq!(
            members_body(&ids, true, Dialect::Generic)["Operations"][0]["value"][0]["value"],
            "005A"
        );
    }
}
