//! PUT where PATCH is not supported: a PATCH body (RFC 7644 §3.5.2), as [`crate::resources`]
//! builds it, applied to the resource's current JSON document, which is then sent whole.
//!
//! PUT replaces the resource (RFC 7644 §3.5.1), so the document keeps every attribute the
//! change set does not touch, including those scimsync never models (`photos`, `x509…`, other
//! extensions). Pure: the client reads and sends, this module only edits JSON.
//!
//! The paths understood are exactly the shapes scimsync produces:
//! - no path: `replace`/`add` of an object of attributes (complex attributes and extension
//!   objects merged, the rest replaced);
//! - `attr` and `name.sub` (core or extension, `urn:…:attr`, also `urn:…:attr.sub`);
//! - value filters `attr[sub eq "x"]` and `attr[sub eq "x"].sub2` (`emails[type eq "work"].value`,
//!   `phoneNumbers[type eq "work"]`, `members[value eq "id"]`), with `eq` only;
//! - `members` `add` of a list (values already present are not doubled).
//!
//! Anything else is an error naming the path: never a silently wrong document.

use crate::constants::{GROUP_SCHEMA, USER_SCHEMA};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// Attributes never sent back in a PUT: the server assigns them (RFC 7643 §3.1).
const ALWAYS_READ_ONLY: [&str; 2] = ["id", "meta"];

/// One parsed attribute path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Path {
    /// An extension's schema URN; `None` for the resource's core schema.
    urn: Option<String>,
    attr: String,
    /// `[name eq value]`.
    filter: Option<(String, Value)>,
    sub: Option<String>,
}

/// Parses `path`; the error says why it is not one of the shapes handled.
fn parse(path: &str) -> Result<Path, String> {
    let path = path.trim();
    let unsupported = |why: &str| format!("cannot apply the path {path:?} for a PUT: {why}");
    let head_end = path.find('[').unwrap_or(path.len());
    let (urn, rest) = if path.len() > 4 && path[..4].eq_ignore_ascii_case("urn:") {
        let (urn, _) = path[..head_end]
            .rsplit_once(':')
            .ok_or_else(|| unsupported("no attribute after the schema URN"))?;
        let core = urn.eq_ignore_ascii_case(USER_SCHEMA) || urn.eq_ignore_ascii_case(GROUP_SCHEMA);
        ((!core).then(|| urn.to_owned()), &path[urn.len() + 1..])
    } else {
        (None, path)
    };
    let attr_end = rest.find(['[', '.']).unwrap_or(rest.len());
    let attr = &rest[..attr_end];
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !plain(attr) {
        return Err(unsupported("not an attribute name"));
    }
    let mut tail = &rest[attr_end..];
    let mut filter = None;
    if let Some(inner) = tail.strip_prefix('[') {
        let close = closing_bracket(inner).ok_or_else(|| unsupported("unclosed filter"))?;
        filter = Some(parse_filter(&inner[..close]).map_err(|e| unsupported(&e))?);
        tail = &inner[close + 1..];
    }
    let sub = match tail {
        "" => None,
        t => match t.strip_prefix('.') {
            Some(s) if plain(s) => Some(s.to_owned()),
            _ => return Err(unsupported("not a sub-attribute")),
        },
    };
    Ok(Path {
        urn,
        attr: attr.to_owned(),
        filter,
        sub,
    })
}

/// The index of the `]` closing a filter, outside string literals.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ']' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// `name eq literal`, the literal a JSON string (quotes and backslashes escaped as
/// [`crate::resources::quote`] writes them), a boolean or a number.
fn parse_filter(text: &str) -> Result<(String, Value), String> {
    let text = text.trim();
    let (name, rest) = text
        .split_once(char::is_whitespace)
        .ok_or("a filter must read `attribute eq value`")?;
    let rest = rest.trim_start();
    let (op, literal) = rest
        .split_once(char::is_whitespace)
        .ok_or("a filter must read `attribute eq value`")?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(format!("only `eq` filters are handled, not {op:?}"));
    }
    let value: Value = serde_json::from_str(literal.trim())
        .map_err(|_| format!("{literal:?} is not a filter literal"))?;
    if value.is_object() || value.is_array() {
        return Err(format!("{literal:?} is not a filter literal"));
    }
    Ok((name.to_owned(), value))
}

/// The key of `map` that is `name` (exactly, else case-insensitively: SCIM attribute names
/// and URNs are case-insensitive), or `name` itself when there is none.
fn key_of(map: &Map<String, Value>, name: &str) -> String {
    if map.contains_key(name) {
        return name.to_owned();
    }
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

/// Whether the item of a multi-valued attribute matches `[name eq value]`: string values
/// compare exactly for `value` and `$ref` (ids are case-exact) and case-insensitively
/// otherwise (`type eq "Work"`).
fn matches(item: &Value, (name, wanted): &(String, Value)) -> bool {
    let Some(map) = item.as_object() else {
        return false;
    };
    let Some(found) = map.get(&key_of(map, name)) else {
        return false;
    };
    match (found, wanted) {
        (Value::String(a), Value::String(b)) => {
            if name.eq_ignore_ascii_case("value") || name.eq_ignore_ascii_case("$ref") {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        }
        (Value::String(a), Value::Bool(b)) => a.eq_ignore_ascii_case(&b.to_string()),
        (a, b) => a == b,
    }
}

/// Whether two items of a multi-valued attribute are the same: the same `value` when both
/// have one, else equal.
fn same_item(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Merges `value` into `target`: objects key by key (recursively), anything else replaced.
fn merge(target: &mut Value, value: Value) {
    match (target, value) {
        (Value::Object(t), Value::Object(v)) => {
            for (k, v) in v {
                let key = key_of(t, &k);
                match t.get_mut(&key) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(key, v);
                    }
                }
            }
        }
        (t, v) => *t = v,
    }
}

/// Adds `urn` to the document's `schemas` when it is not listed.
fn declare_schema(doc: &mut Map<String, Value>, urn: &str) {
    let key = key_of(doc, "schemas");
    let schemas = doc.entry(key).or_insert_with(|| json!([]));
    if let Some(list) = schemas.as_array_mut()
        && !list
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
    {
        list.push(json!(urn));
    }
}

/// Applies every operation of the PATCH body `patch` to `doc` (a resource's JSON object), in
/// order. The error names the operation that cannot be applied.
pub(crate) fn apply_patch(doc: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or("the PATCH body has no Operations")?;
    let doc = doc
        .as_object_mut()
        .ok_or("the resource read is not a JSON object")?;
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| format!("an operation without op: {op}"))?;
        let value = op.get("value").cloned();
        match op.get("path").and_then(Value::as_str) {
            None => {
                let Some(Value::Object(attrs)) = value else {
                    return Err(format!("a path-less {name} needs an object value: {op}"));
                };
                if name == "remove" {
                    return Err("a path-less remove cannot be applied".into());
                }
                apply_pathless(doc, attrs, name == "add");
            }
            Some(p) => {
                let path = parse(p)?;
                match name.as_str() {
                    "add" | "replace" => {
                        let value = value.ok_or_else(|| format!("{name} of {p:?} has no value"))?;
                        set(doc, &path, value, name == "add").map_err(|e| format!("{p:?}: {e}"))?;
                    }
                    "remove" => remove(doc, &path),
                    other => return Err(format!("unknown PATCH op {other:?}")),
                }
            }
        }
    }
    Ok(())
}

/// A path-less `replace` (or `add`) of `attrs`: extension objects and complex attributes
/// merged, multi-valued ones replaced (appended to for `add`), the rest set.
fn apply_pathless(doc: &mut Map<String, Value>, attrs: Map<String, Value>, add: bool) {
    for (k, v) in attrs {
        if k.len() > 4 && k[..4].eq_ignore_ascii_case("urn:") {
            declare_schema(doc, &k);
        }
        let key = key_of(doc, &k);
        match (doc.get_mut(&key), v) {
            (Some(existing @ Value::Object(_)), v @ Value::Object(_)) => merge(existing, v),
            (Some(Value::Array(existing)), Value::Array(items)) if add => {
                for item in items {
                    if !existing.iter().any(|e| same_item(e, &item)) {
                        existing.push(item);
                    }
                }
            }
            (_, v) => {
                doc.insert(key, v);
            }
        }
    }
}

/// The object the path's attribute lives in: the document, or its extension object (created,
/// and declared in `schemas`, when `create`).
fn container<'a>(
    doc: &'a mut Map<String, Value>,
    path: &Path,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    let Some(urn) = &path.urn else {
        return Some(doc);
    };
    if create {
        declare_schema(doc, urn);
    }
    let key = key_of(doc, urn);
    if create {
        let slot = doc.entry(key).or_insert_with(|| json!({}));
        if !slot.is_object() {
            *slot = json!({});
        }
        slot.as_object_mut()
    } else {
        doc.get_mut(&key).and_then(Value::as_object_mut)
    }
}

/// `add`/`replace` of `value` at `path`.
fn set(doc: &mut Map<String, Value>, path: &Path, value: Value, add: bool) -> Result<(), String> {
    let Some(map) = container(doc, path, true) else {
        return Err("the extension is not an object".into());
    };
    let key = key_of(map, &path.attr);
    match (&path.filter, &path.sub) {
        (None, None) => match (map.get_mut(&key), value) {
            (Some(Value::Array(existing)), Value::Array(items)) if add => {
                for item in items {
                    if !existing.iter().any(|e| same_item(e, &item)) {
                        existing.push(item);
                    }
                }
            }
            (Some(existing @ Value::Object(_)), v @ Value::Object(_)) if add => merge(existing, v),
            (_, v) => {
                map.insert(key, v);
            }
        },
        (None, Some(sub)) => {
            let slot = map.entry(key).or_insert_with(|| json!({}));
            match slot {
                Value::Object(inner) => {
                    let sub_key = key_of(inner, sub);
                    inner.insert(sub_key, value);
                }
                Value::Null => *slot = json!({ sub: value }),
                _ => return Err("a sub-attribute of a value that is not an object".into()),
            }
        }
        (Some(filter), sub) => {
            let slot = map.entry(key).or_insert_with(|| json!([]));
            if slot.is_null() {
                *slot = json!([]);
            }
            let list = slot
                .as_array_mut()
                .ok_or("a value filter on an attribute that is not multi-valued")?;
            let mut found = false;
            for item in list.iter_mut().filter(|i| matches(i, filter)) {
                found = true;
                match (sub, item) {
                    (Some(sub), Value::Object(o)) => {
                        let sub_key = key_of(o, sub);
                        o.insert(sub_key, value.clone());
                    }
                    (None, item) => merge(item, value.clone()),
                    _ => {}
                }
            }
            if !found {
                // No item matches: one is added carrying the filter's value (the work email
                // of a user that had none).
                let mut item = Map::new();
                item.insert(filter.0.clone(), filter.1.clone());
                match sub {
                    Some(sub) => {
                        item.insert(sub.clone(), value);
                    }
                    None => match value {
                        Value::Object(v) => item.extend(v),
                        Value::Array(items) => {
                            list.extend(items);
                            return Ok(());
                        }
                        other => {
                            item.insert("value".into(), other);
                        }
                    },
                }
                list.push(Value::Object(item));
            }
        }
    }
    Ok(())
}

/// `remove` at `path`; removing what is not there is no error (RFC 7644 §3.5.2.2 leaves the
/// resource as it is). A multi-valued attribute left without items is dropped, except
/// `members` (a group keeps its empty list: some servers require the attribute).
fn remove(doc: &mut Map<String, Value>, path: &Path) {
    let Some(map) = container(doc, path, false) else {
        return;
    };
    let key = key_of(map, &path.attr);
    match (&path.filter, &path.sub) {
        (None, None) => {
            map.remove(&key);
        }
        (None, Some(sub)) => {
            if let Some(Value::Object(inner)) = map.get_mut(&key) {
                let sub_key = key_of(inner, sub);
                inner.remove(&sub_key);
            }
        }
        (Some(filter), sub) => {
            let Some(Value::Array(list)) = map.get_mut(&key) else {
                return;
            };
            match sub {
                None => list.retain(|i| !matches(i, filter)),
                Some(sub) => {
                    for item in list.iter_mut().filter(|i| matches(i, filter)) {
                        if let Some(o) = item.as_object_mut() {
                            let sub_key = key_of(o, sub);
                            o.remove(&sub_key);
                        }
                    }
                }
            }
            if list.is_empty() && !path.attr.eq_ignore_ascii_case("members") {
                map.remove(&key);
            }
        }
    }
}

/// Drops what the server assigns and would refuse or ignore in a PUT: `id`, `meta`, and the
/// attributes named in `read_only` (core names, or `urn:…:attr` for an extension's).
pub(crate) fn strip_read_only(doc: &mut Value, read_only: &BTreeSet<String>) {
    let Some(map) = doc.as_object_mut() else {
        return;
    };
    for name in ALWAYS_READ_ONLY
        .iter()
        .copied()
        .chain(read_only.iter().map(String::as_str))
    {
        if name.len() > 4 && name[..4].eq_ignore_ascii_case("urn:") {
            if let Some((urn, attr)) = name.rsplit_once(':') {
                let key = key_of(map, urn);
                if let Some(Value::Object(ext)) = map.get_mut(&key) {
                    let attr_key = key_of(ext, attr);
                    ext.remove(&attr_key);
                }
            }
        } else {
            let key = key_of(map, name);
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dialect;
    use crate::constants::ENTERPRISE_SCHEMA;
    use crate::resources::{
        generic_members_body, patch_user_body, plain_multi_values, rename_body,
    };
    use scimsync_core::plan::{EnterpriseChanges, UserChanges};

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA],
            "id": "u1",
            "meta": {"resourceType": "User", "version": "W/\"3\""},
            "userName": "ada@example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
            "title": "Countess",
            "emails": [
                {"type": "home", "value": "ada@home.example"},
                {"type": "work", "primary": true, "value": "ada@example.com"}
            ],
            "phoneNumbers": [{"type": "work", "value": "+1555"}, {"type": "mobile", "value": "+1666"}],
            "photos": [{"type": "photo", "value": "https://example.com/ada.jpg"}],
            "groups": [{"value": "g1", "display": "Engineering"}],
            "active": true
        })
    }

    fn patched(doc: &Value, body: &Value) -> Value {
        let mut doc = doc.clone();
        apply_patch(&mut doc, body).unwrap();
        doc
    }

    #[test]
    fn paths_in_every_shape_scimsync_writes() {
        let p = parse("name.givenName").unwrap();
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("name", Some("givenName"))
        );
        let p = parse(&format!("{ENTERPRISE_SCHEMA}:department")).unwrap();
        assert_eq!(p.urn.as_deref(), Some(ENTERPRISE_SCHEMA));
        assert_eq!(p.attr, "department");
        let p = parse(&format!("{USER_SCHEMA}:title")).unwrap();
        assert_eq!((p.urn, p.attr.as_str()), (None, "title"));
        let p = parse("emails[type eq \"work\"].value").unwrap();
        assert_eq!(p.filter, Some(("type".into(), json!("work"))));
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = parse(r#"members[value eq "a\"]b"]"#).unwrap();
        assert_eq!(p.filter, Some(("value".into(), json!("a\"]b"))));
        assert_eq!(p.sub, None);
        let p = parse("urn:acme:ext:1.0:User:badge.number").unwrap();
        assert_eq!(p.urn.as_deref(), Some("urn:acme:ext:1.0:User"));
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("badge", Some("number"))
        );
        for bad in [
            "emails[type co \"w\"]",
            "emails[type eq]",
            "emails[type eq \"w\"",
            "a b",
            "",
            "name.given.name",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_generic_user_update_keeps_what_it_does_not_change() {
        let changes = UserChanges {
            given_name: Some(Some("Augusta".into())),
            title: Some(None),
            email: Some("augusta@example.com".into()),
            work_phone: Some(Some("+1777".into())),
            enterprise: EnterpriseChanges {
                department: Some(Some("R&D".into())),
                manager: Some(Some("u9".into())),
                ..Default::default()
            },
            active: Some(false),
            ..Default::default()
        };
        let body = patch_user_body(&changes, Dialect::Generic, None);
        let doc = patched(&user(), &body);
        assert_eq!(doc["name"]["givenName"], "Augusta");
        assert_eq!(
            doc["name"]["familyName"], "Lovelace",
            "untouched sub-attribute"
        );
        assert!(doc.get("title").is_none(), "removed");
        assert_eq!(
            doc["emails"],
            json!([
                {"type": "home", "value": "ada@home.example"},
                {"type": "work", "primary": true, "value": "augusta@example.com"}
            ])
        );
        assert_eq!(
            doc["phoneNumbers"],
            json!([{"type": "work", "value": "+1777"}, {"type": "mobile", "value": "+1666"}])
        );
        assert_eq!(doc[ENTERPRISE_SCHEMA]["department"], "R&D");
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"value": "u9"}));
        assert!(
            doc["schemas"]
                .as_array()
                .unwrap()
                .contains(&json!(ENTERPRISE_SCHEMA)),
            "the extension is declared"
        );
        assert_eq!(doc["active"], false);
        assert_eq!(doc["photos"], user()["photos"], "never modelled, kept");
        assert_eq!(doc["userName"], "ada@example.com");
    }

    #[test]
    fn a_work_phone_removed_and_a_first_work_email_added() {
        let changes = UserChanges {
            work_phone: Some(None),
            email: Some("new@example.com".into()),
            ..Default::default()
        };
        let body = patch_user_body(&changes, Dialect::Generic, None);
        let mut doc = json!({"userName": "x", "phoneNumbers": [{"type": "Work", "value": "+1"}]});
        apply_patch(&mut doc, &body).unwrap();
        assert!(
            doc.get("phoneNumbers").is_none(),
            "its only item went: dropped"
        );
        assert_eq!(
            doc["emails"],
            json!([{"type": "work", "value": "new@example.com"}])
        );
    }

    #[test]
    fn plain_value_targets_get_whole_lists() {
        let changes = UserChanges {
            email: Some("plain@example.com".into()),
            ..Default::default()
        };
        let mut body = patch_user_body(&changes, Dialect::Generic, None);
        plain_multi_values(&mut body);
        let doc = patched(&json!({"emails": [{"value": "old@example.com"}]}), &body);
        assert_eq!(doc["emails"], json!([{"value": "plain@example.com"}]));
    }

    #[test]
    fn a_salesforce_pathless_replace_merges_complex_attributes() {
        let changes = UserChanges {
            family_name: Some(Some("Byron".into())),
            nick_name: Some("ada".into()),
            title: Some(None),
            enterprise: EnterpriseChanges {
                division: Some(Some("Maths".into())),
                ..Default::default()
            },
            ..Default::default()
        };
        let body = patch_user_body(&changes, Dialect::Salesforce, None);
        let mut start = user();
        start[ENTERPRISE_SCHEMA] = json!({"employeeNumber": "7"});
        let doc = patched(&start, &body);
        assert_eq!(
            doc["name"],
            json!({"givenName": "Ada", "familyName": "Byron", "formatted": "Ada Lovelace"})
        );
        assert_eq!(doc["nickName"], "ada");
        assert_eq!(
            doc[ENTERPRISE_SCHEMA],
            json!({"employeeNumber": "7", "division": "Maths"})
        );
        assert!(doc.get("title").is_none());
    }

    #[test]
    fn members_added_once_and_removed_by_listed_value() {
        let group = json!({
            "schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "Eng",
            "members": [{"value": "u1", "$ref": "http://t/Users/u1"}, {"value": "bob", "$ref": "http://t/Users/bob"}],
            "meta": {"version": "W/\"1\""}
        });
        let body = generic_members_body(
            &[
                ("u1".into(), "http://t/Users/u1".into()),
                ("u3".into(), "http://t/Users/u3".into()),
            ],
            &["bob".into()],
        );
        let doc = patched(&group, &body);
        assert_eq!(
            doc["members"],
            json!([{"value": "u1", "$ref": "http://t/Users/u1"}, {"value": "u3", "$ref": "http://t/Users/u3"}])
        );
        let emptied = patched(
            &doc,
            &generic_members_body(&[], &["u1".into(), "u3".into()]),
        );
        assert_eq!(emptied["members"], json!([]), "a group keeps an empty list");
        let first = patched(
            &json!({"displayName": "Eng"}),
            &generic_members_body(&[("u1".into(), "r".into())], &[]),
        );
        assert_eq!(first["members"], json!([{"value": "u1", "$ref": "r"}]));
        let renamed = patched(&group, &rename_body("Engineering", Dialect::Generic));
        assert_eq!(renamed["displayName"], "Engineering");
        assert_eq!(renamed["members"], group["members"]);
        let sf = patched(&group, &rename_body("Engineering", Dialect::Salesforce));
        assert_eq!(sf["displayName"], "Engineering");
    }

    #[test]
    fn read_only_attributes_are_dropped() {
        let mut doc = user();
        doc[ENTERPRISE_SCHEMA] =
            json!({"manager": {"value": "u9", "displayName": "Boss"}, "department": "X"});
        let declared: BTreeSet<String> =
            ["groups".to_owned(), format!("{ENTERPRISE_SCHEMA}:manager")].into();
        strip_read_only(&mut doc, &declared);
        for gone in ["id", "meta", "groups"] {
            assert!(doc.get(gone).is_none(), "{gone}");
        }
        assert_eq!(doc[ENTERPRISE_SCHEMA], json!({"department": "X"}));
        assert_eq!(doc["photos"], user()["photos"]);
        assert_eq!(doc["schemas"], json!([USER_SCHEMA]));
    }

    #[test]
    fn what_cannot_be_applied_is_an_error() {
        let mut doc = user();
        let bad = json!({"Operations": [{"op": "replace", "path": "emails[value sw \"a\"]", "value": "x"}]});
        let err = apply_patch(&mut doc, &bad).unwrap_err();
        assert!(err.contains("only `eq`"), "{err}");
        let no_ops = json!({"schemas": []});
        assert!(apply_patch(&mut doc, &no_ops).is_err());
        let pathless_remove = json!({"Operations": [{"op": "remove", "value": {"title": "x"}}]});
        assert!(apply_patch(&mut doc, &pathless_remove).is_err());
        let sub_of_list =
            json!({"Operations": [{"op": "replace", "path": "emails.value", "value": "x"}]});
        assert!(apply_patch(&mut doc, &sub_of_list).is_err());
        assert!(apply_patch(&mut json!([1]), &json!({"Operations": []})).is_err());
    }
}
