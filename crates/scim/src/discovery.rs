//! Discovery: what a target says about itself (RFC 7643 §5–7, RFC 7644 §4) read into a
//! [`TargetCapabilities`] record, with a safe fallback, written to `notes`, for every document
//! that is missing, empty or unreadable. Pure: the client fetches, this module only reads.

use crate::config::{Dialect, FederationIdPlacement};
use crate::constants::{ENTERPRISE_SCHEMA, GROUP_SCHEMA, SALESFORCE_USER_EXTENSION, USER_SCHEMA};
use crate::resources::{AttrPath, get_ci};
use scimsync_core::target::TargetCapabilities;
use serde_json::Value;
use std::collections::BTreeSet;

/// One discovery document as fetched.
#[derive(Debug, Clone)]
pub(crate) enum Fetched {
    /// The body the target answered.
    Body(Value),
    /// Not served (404 and other refusals) or not JSON; the text says what happened.
    Missing(String),
}

/// `true`/`false`, also as strings (Salesforce sends some booleans as strings).
fn boolean(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// `{feature}.supported` of a service provider config.
fn supported(spc: &Value, feature: &str) -> Option<bool> {
    boolean(get_ci(spc, feature).and_then(|f| get_ci(f, "supported")))
}

/// The resources of a list answer: a `ListResponse`'s `Resources`, or a bare array.
fn resources(v: &Value) -> Option<&Vec<Value>> {
    match v {
        Value::Array(a) => Some(a),
        Value::Object(_) => get_ci(v, "Resources").and_then(Value::as_array),
        _ => None,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get_ci(v, key).and_then(Value::as_str)
}

/// Whether a resource type is `name` (by name or id) or served at `/{endpoint}`.
fn is_type(rt: &Value, name: &str, endpoint: &str) -> bool {
    ["name", "id"]
        .iter()
        .filter_map(|k| text(rt, k))
        .any(|n| n.eq_ignore_ascii_case(name))
        || text(rt, "endpoint").is_some_and(|e| e.trim_matches('/').eq_ignore_ascii_case(endpoint))
}

/// The attribute `name` of a schema document (or of a complex attribute's `subAttributes`).
fn attribute<'a>(attributes: Option<&'a Vec<Value>>, name: &str) -> Option<&'a Value> {
    attributes?
        .iter()
        .find(|a| text(a, "name").is_some_and(|n| n.eq_ignore_ascii_case(name)))
}

fn attributes_of<'a>(doc: &'a Value, key: &str) -> Option<&'a Vec<Value>> {
    get_ci(doc, key).and_then(Value::as_array)
}

/// The attributes of a schema document, none when there is no document.
fn attributes_of_opt(doc: Option<&Value>) -> impl Iterator<Item = &Value> {
    doc.and_then(|d| attributes_of(d, "attributes"))
        .into_iter()
        .flatten()
}

fn required(a: &Value) -> bool {
    boolean(get_ci(a, "required")).unwrap_or(false)
}

/// The schema documents `/Schemas` answered, by lower-cased id; `None` with a note when there
/// are none to read.
fn schema_documents(schemas: &Fetched, notes: &mut Vec<String>) -> Option<Vec<(String, Value)>> {
    let fallback = "every mapped attribute is planned";
    let docs = match schemas {
        Fetched::Missing(why) => {
            notes.push(format!("/Schemas could not be read ({why}); {fallback}."));
            return None;
        }
        Fetched::Body(v) => {
            // A single schema document is accepted as a list of one.
            let list = resources(v)
                .cloned()
                .or_else(|| text(v, "id").is_some().then(|| vec![v.clone()]));
            let Some(list) = list else {
                notes.push(format!("/Schemas is not a list of schemas; {fallback}."));
                return None;
            };
            list.into_iter()
                .filter_map(|d| Some((text(&d, "id")?.to_ascii_lowercase(), d)))
                .collect::<Vec<_>>()
        }
    };
    if docs.is_empty() {
        notes.push(format!("/Schemas lists no schema; {fallback}."));
        return None;
    }
    Some(docs)
}

/// Reads the three discovery documents into capabilities, resolving the Federation ID's
/// place from `placement`.
pub(crate) fn capabilities(
    dialect: Dialect,
    placement: &FederationIdPlacement,
    spc: &Fetched,
    resource_types: &Fetched,
    schemas: &Fetched,
) -> TargetCapabilities {
    let mut caps = TargetCapabilities::default();
    let mut notes = Vec::new();

    // Service provider config.
    let spc_doc = match spc {
        Fetched::Body(v) => {
            let doc = resources(v).and_then(|r| r.first()).unwrap_or(v);
            if doc.is_object() {
                Some(doc)
            } else {
                notes.push(
                    "the service provider config is not a JSON object; assuming PATCH and filters supported, no ETags, no sorting, no maxResults."
                        .into(),
                );
                None
            }
        }
        Fetched::Missing(why) => {
            notes.push(format!(
                "no service provider config ({why}); assuming PATCH and filters supported, no ETags, no sorting, no maxResults."
            ));
            None
        }
    };
    let spc_doc = spc_doc.unwrap_or(&Value::Null);
    caps.patch = supported(spc_doc, "patch").unwrap_or(true);
    caps.filter = supported(spc_doc, "filter").unwrap_or(true);
    caps.etag = supported(spc_doc, "etag").unwrap_or(false);
    caps.sort = supported(spc_doc, "sort").unwrap_or(false);
    caps.max_results = get_ci(spc_doc, "filter")
        .and_then(|f| get_ci(f, "maxResults"))
        .and_then(|m| {
            m.as_u64()
                .or_else(|| m.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .filter(|m| *m > 0)
        .map(|m| u32::try_from(m).unwrap_or(u32::MAX));
    if !caps.patch {
        notes.push("the target says it does not support PATCH: users and groups are updated by PUT of the whole resource, read just before (attributes scimsync does not change are sent back as read).".into());
    }

    // Resource types.
    let mut extensions: BTreeSet<String> = BTreeSet::new();
    let types = match resource_types {
        Fetched::Body(v) => match resources(v) {
            Some(list) if !list.is_empty() => Some(list),
            Some(_) => {
                notes.push("/ResourceTypes lists no resource type".into());
                None
            }
            None => {
                notes.push("/ResourceTypes is not a list of resource types".into());
                None
            }
        },
        Fetched::Missing(why) => {
            notes.push(format!("/ResourceTypes could not be read ({why})"));
            None
        }
    };
    match types {
        Some(list) => {
            caps.entitlements = list
                .iter()
                .any(|t| is_type(t, "Entitlement", "Entitlements"));
            caps.roles = list.iter().any(|t| is_type(t, "Role", "Roles"));
            if let Some(user) = list.iter().find(|t| {
                is_type(t, "User", "Users")
                    || text(t, "schema").is_some_and(|s| s.eq_ignore_ascii_case(USER_SCHEMA))
            }) {
                for ext in attributes_of(user, "schemaExtensions")
                    .into_iter()
                    .flatten()
                {
                    if let Some(s) = text(ext, "schema") {
                        extensions.insert(s.to_owned());
                    }
                }
            }
        }
        None => {
            let assumed = dialect == Dialect::Salesforce;
            caps.entitlements = assumed;
            caps.roles = assumed;
            if let Some(last) = notes.last_mut() {
                if assumed {
                    last.push_str("; assuming /Entitlements and /Roles exist (Salesforce).");
                } else {
                    last.push_str(
                        "; assuming no /Entitlements and no /Roles (generic target): the catalogue is not read.",
                    );
                }
            }
        }
    }

    // Schemas.
    let docs = schema_documents(schemas, &mut notes);
    for (id, doc) in docs.iter().flatten() {
        if id.ends_with(":user") && *id != USER_SCHEMA.to_ascii_lowercase() {
            extensions.insert(text(doc, "id").unwrap_or(id).to_owned());
        }
    }
    let declared_ext = |urn: &str| extensions.iter().any(|e| e.eq_ignore_ascii_case(urn));
    let doc_of = |urn: &str| {
        docs.iter()
            .flatten()
            .find(|(id, _)| id.eq_ignore_ascii_case(urn))
            .map(|(_, d)| d)
    };
    // Whether a path is declared: `None` when it cannot be told (the schema is unknown).
    let path_declared = |p: &AttrPath| -> Option<(bool, bool)> {
        let doc = match &p.urn {
            None => doc_of(USER_SCHEMA)?,
            Some(urn) => match doc_of(urn) {
                Some(d) => d,
                // An extension the resource type declares without a schema document: its
                // attributes are assumed.
                None if declared_ext(urn) => return Some((true, false)),
                None if docs.is_some() => return Some((false, false)),
                None => return None,
            },
        };
        let Some(a) = attribute(attributes_of(doc, "attributes"), &p.attr) else {
            return Some((false, false));
        };
        match (&p.sub, attributes_of(a, "subAttributes")) {
            (None, _) | (Some(_), None) => Some((true, required(a))),
            (Some(sub), Some(subs)) => {
                Some(attribute(Some(subs), sub).map_or((false, false), |s| (true, required(s))))
            }
        }
    };

    // Read-only attributes, left out of a PUT.
    let read_only = |doc: Option<&Value>, prefix: Option<&str>| -> BTreeSet<String> {
        attributes_of_opt(doc)
            .filter(|a| text(a, "mutability").is_some_and(|m| m.eq_ignore_ascii_case("readOnly")))
            .filter_map(|a| text(a, "name"))
            .map(|n| prefix.map_or_else(|| n.to_owned(), |urn| format!("{urn}:{n}")))
            .collect()
    };
    caps.user_read_only = read_only(doc_of(USER_SCHEMA), None);
    for urn in &extensions {
        caps.user_read_only
            .extend(read_only(doc_of(urn), Some(urn.as_str())));
    }
    caps.group_read_only = read_only(doc_of(GROUP_SCHEMA), None);

    // The Group schema: a displayName that cannot change.
    caps.group_name_immutable = doc_of(GROUP_SCHEMA)
        .and_then(|g| attribute(attributes_of(g, "attributes"), "displayName"))
        .and_then(|a| text(a, "mutability"))
        .is_some_and(|m| m.eq_ignore_ascii_case("immutable") || m.eq_ignore_ascii_case("readOnly"));
    if caps.group_name_immutable {
        notes.push("the target's schema makes a group's displayName immutable: group renames are not sent, they are held.".into());
    }

    // User attributes.
    let core = doc_of(USER_SCHEMA);
    if docs.is_some() && core.is_none() {
        notes.push(
            "/Schemas does not describe the core User schema; every mapped attribute is planned."
                .into(),
        );
    }
    if let Some(core) = core {
        let mut declared = BTreeSet::new();
        let mut needed = BTreeSet::new();
        let attrs = attributes_of(core, "attributes");
        // externalId is a common attribute (RFC 7643 §3.1), usually not listed: assumed
        // writable unless the schema lists it read-only (then it is never sent).
        let external_read_only = attribute(attrs, "externalId").is_some_and(|a| {
            text(a, "mutability").is_some_and(|m| m.eq_ignore_ascii_case("readOnly"))
        });
        if external_read_only {
            notes.push("the target's schema makes externalId read-only: it is not sent, and accounts match by link and userName.".into());
        } else {
            declared.insert("externalId".to_owned());
        }
        // emails and phoneNumbers without `type`: written as plain values.
        caps.plain_multi_values = attribute(attrs, "emails")
            .and_then(|e| attributes_of(e, "subAttributes"))
            .is_some_and(|subs| !subs.is_empty() && attribute(Some(subs), "type").is_none());
        if caps.plain_multi_values {
            notes.push(
                "the target's emails take no type: the email is written as a plain value.".into(),
            );
        }
        let mut put = |logical: &str, is_required: bool| {
            declared.insert(logical.to_owned());
            if is_required {
                needed.insert(logical.to_owned());
            }
        };
        for name in [
            "userName",
            "displayName",
            "nickName",
            "title",
            "emails",
            "phoneNumbers",
            "active",
            "entitlements",
            "roles",
        ] {
            if let Some(a) = attribute(attrs, name) {
                put(name, required(a));
            }
        }
        if let Some(name) = attribute(attrs, "name") {
            let subs = attributes_of(name, "subAttributes");
            for sub in ["givenName", "familyName"] {
                match subs {
                    None => put(&format!("name.{sub}"), required(name)),
                    Some(list) => {
                        if let Some(s) = attribute(Some(list), sub) {
                            let explicit = boolean(get_ci(s, "required"));
                            put(
                                &format!("name.{sub}"),
                                explicit.unwrap_or_else(|| required(name)),
                            );
                        }
                    }
                }
            }
        }
        if declared_ext(ENTERPRISE_SCHEMA) || doc_of(ENTERPRISE_SCHEMA).is_some() {
            let ent_attrs = doc_of(ENTERPRISE_SCHEMA).and_then(|d| attributes_of(d, "attributes"));
            for name in [
                "employeeNumber",
                "department",
                "division",
                "organization",
                "costCenter",
                "manager",
            ] {
                match ent_attrs {
                    None => put(name, false),
                    Some(list) => {
                        if let Some(a) = attribute(Some(list), name) {
                            put(name, required(a));
                        }
                    }
                }
            }
        }
        caps.user_attributes = Some(declared);
        caps.required_user_attributes = needed;
    }

    // The Federation ID's place.
    let federation = match placement {
        FederationIdPlacement::Off => {
            notes.push(
                "federation_id is off: the Federation ID is not sent; SSO matches on the userName."
                    .into(),
            );
            None
        }
        FederationIdPlacement::Path(p) => match AttrPath::parse(p) {
            Ok(path) => Some(path),
            Err(e) => {
                notes.push(format!(
                    "federation_id: {e}; the Federation ID is not sent."
                ));
                None
            }
        },
        FederationIdPlacement::Auto => {
            let path = AttrPath::salesforce();
            if matches!(path_declared(&path), Some((true, _))) {
                Some(path)
            } else {
                notes.push(format!(
                    "the target declares no Federation ID attribute ({SALESFORCE_USER_EXTENSION}:federationIdentifier); the Federation ID is not sent and SSO must match on the userName."
                ));
                None
            }
        }
    };
    if let Some(path) = &federation {
        match path_declared(path) {
            Some((true, is_required)) => {
                if let Some(a) = caps.user_attributes.as_mut() {
                    a.insert("federationId".into());
                }
                if is_required {
                    caps.required_user_attributes.insert("federationId".into());
                }
            }
            Some((false, _)) => {
                if let Some(a) = caps.user_attributes.as_mut() {
                    a.remove("federationId");
                }
                notes.push(format!(
                    "the target's schema does not declare {path}; the Federation ID is not planned."
                ));
            }
            None => {}
        }
    }
    caps.federation_id_path = federation.map(|p| p.to_string());
    caps.user_extensions = extensions;
    caps.notes = notes;
    caps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sf_spc() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": 200},
            "changePassword": {"supported": true},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{"type": "oauth2", "name": "OAuth v2.0"}]
        })
    }

    fn types(user_extensions: &[&str]) -> Value {
        let ext: Vec<Value> = user_extensions
            .iter()
            .map(|s| json!({"schema": s, "required": false}))
            .collect();
        json!({"totalResults": 4, "Resources": [
            {"id": "User", "name": "User", "endpoint": "/Users", "schema": USER_SCHEMA, "schemaExtensions": ext},
            {"id": "Group", "name": "Group", "endpoint": "/Groups", "schema": "urn:ietf:params:scim:schemas:core:2.0:Group"},
            {"id": "Entitlement", "name": "Entitlement", "endpoint": "/Entitlements"},
            {"id": "Role", "name": "Role", "endpoint": "/Roles"}
        ]})
    }

    fn core_schema() -> Value {
        json!({"id": USER_SCHEMA, "name": "User", "attributes": [
            {"name": "userName", "type": "string", "required": true},
            {"name": "name", "type": "complex", "subAttributes": [
                {"name": "givenName", "type": "string"},
                {"name": "familyName", "type": "string", "required": true},
                {"name": "formatted", "type": "string"}
            ]},
            {"name": "displayName", "type": "string"},
            {"name": "nickName", "type": "string"},
            {"name": "emails", "type": "complex", "multiValued": true, "required": true},
            {"name": "active", "type": "boolean"},
            {"name": "entitlements", "type": "complex", "multiValued": true},
            {"name": "roles", "type": "complex", "multiValued": true}
        ]})
    }

    fn enterprise_schema() -> Value {
        json!({"id": ENTERPRISE_SCHEMA, "attributes": [
            {"name": "employeeNumber", "type": "string"},
            {"name": "department", "type": "string"},
            {"name": "manager", "type": "complex"}
        ]})
    }

    fn sf_extension_schema() -> Value {
        json!({"id": SALESFORCE_USER_EXTENSION, "attributes": [
            {"name": "federationIdentifier", "type": "string"},
            {"name": "alias", "type": "string"}
        ]})
    }

    fn list(docs: Vec<Value>) -> Fetched {
        Fetched::Body(json!({"totalResults": docs.len(), "Resources": docs}))
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn salesforce_with_its_user_extension() {
        let caps = capabilities(
            Dialect::Salesforce,
            &FederationIdPlacement::Auto,
            &Fetched::Body(sf_spc()),
            &Fetched::Body(types(&[ENTERPRISE_SCHEMA, SALESFORCE_USER_EXTENSION])),
            &list(vec![
                core_schema(),
                enterprise_schema(),
                sf_extension_schema(),
            ]),
        );
        assert!(caps.patch && caps.filter && !caps.etag && !caps.sort);
        assert_eq!(caps.max_results, Some(200));
        assert!(caps.entitlements && caps.roles);
        assert_eq!(
            caps.federation_id_path.as_deref(),
            Some("urn:salesforce:schemas:extension:1.0:User:federationIdentifier")
        );
        assert_eq!(
            names(caps.user_attributes.as_ref().unwrap()),
            [
                "active",
                "department",
                "displayName",
                "emails",
                "employeeNumber",
                "entitlements",
                "externalId",
                "federationId",
                "manager",
                "name.familyName",
                "name.givenName",
                "nickName",
                "roles",
                "userName"
            ]
        );
        assert_eq!(
            names(&caps.required_user_attributes),
            ["emails", "name.familyName", "userName"]
        );
        assert_eq!(
            names(&caps.user_extensions),
            [ENTERPRISE_SCHEMA, SALESFORCE_USER_EXTENSION]
        );
        assert!(caps.notes.is_empty(), "{:?}", caps.notes);
        assert!(!caps.declares("title"));
        assert!(!caps.declares("division"));
    }

    #[test]
    fn salesforce_without_its_user_extension_sends_no_federation_id() {
        let caps = capabilities(
            Dialect::Salesforce,
            &FederationIdPlacement::Auto,
            &Fetched::Body(sf_spc()),
            &Fetched::Body(types(&[ENTERPRISE_SCHEMA])),
            &list(vec![core_schema(), enterprise_schema()]),
        );
        assert_eq!(caps.federation_id_path, None);
        assert!(!caps.declares("federationId"));
        assert!(caps.declares("employeeNumber"));
        assert_eq!(caps.notes.len(), 1, "{:?}", caps.notes);
        assert!(caps.notes[0].contains("SSO must match on the userName"));
    }

    #[test]
    fn an_extension_declared_by_the_resource_type_only_is_assumed_whole() {
        // Today's emulator: /Schemas empty, the User type lists its extensions.
        let caps = capabilities(
            Dialect::Salesforce,
            &FederationIdPlacement::Auto,
            &Fetched::Body(sf_spc()),
            &Fetched::Body(types(&[SALESFORCE_USER_EXTENSION])),
            &list(vec![]),
        );
        assert_eq!(caps.user_attributes, None);
        assert!(caps.declares("title"));
        assert_eq!(
            caps.federation_id_path.as_deref(),
            Some("urn:salesforce:schemas:extension:1.0:User:federationIdentifier")
        );
        assert_eq!(caps.notes.len(), 1, "{:?}", caps.notes);
        assert!(caps.notes[0].contains("/Schemas lists no schema"));
    }

    #[test]
    fn enterprise_attributes_only_when_the_extension_is_declared() {
        let caps = capabilities(
            Dialect::Generic,
            &FederationIdPlacement::Auto,
            &Fetched::Body(sf_spc()),
            &Fetched::Body(types(&[])),
            &list(vec![core_schema()]),
        );
        assert!(!caps.declares("employeeNumber"));
        assert!(!caps.declares("manager"));
        assert!(caps.declares("externalId"), "a common attribute");
        // Declared by the resource type, without a schema document: all six assumed.
        let caps = capabilities(
            Dialect::Generic,
            &FederationIdPlacement::Auto,
            &Fetched::Body(sf_spc()),
            &Fetched::Body(types(&[ENTERPRISE_SCHEMA])),
            &list(vec![core_schema()]),
        );
        assert!(caps.declares("costCenter") && caps.declares("manager"));
    }

    #[test]
    fn a_generic_target_with_etags_and_a_path_placement() {
        let spc = json!({"patch": {"supported": "true"}, "filter": {"supported": false},
                         "etag": {"supported": true}, "sort": {"supported": true}});
        let employee = format!("{ENTERPRISE_SCHEMA}:employeeNumber");
        let caps = capabilities(
            Dialect::Generic,
            &FederationIdPlacement::Path(employee.clone()),
            &Fetched::Body(spc),
            &Fetched::Body(json!([{"name": "User", "endpoint": "/Users",
                                    "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA}]}])),
            &list(vec![core_schema(), enterprise_schema()]),
        );
        assert!(caps.patch && !caps.filter && caps.etag && caps.sort);
        assert_eq!(caps.max_results, None);
        assert!(!caps.entitlements && !caps.roles);
        assert_eq!(caps.federation_id_path.as_deref(), Some(employee.as_str()));
        assert!(caps.declares("federationId"));
        assert!(caps.notes.is_empty(), "{:?}", caps.notes);
    }

    #[test]
    fn without_patch_updates_go_by_put_and_read_only_attributes_are_known() {
        let spc = json!({"patch": {"supported": false}, "etag": {"supported": true}});
        let mut core = core_schema();
        core["attributes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "groups", "type": "complex", "mutability": "readOnly"}));
        let mut enterprise = enterprise_schema();
        enterprise["attributes"][2]["mutability"] = json!("readOnly");
        let group = json!({"id": GROUP_SCHEMA, "attributes": [
            {"name": "displayName", "type": "string", "mutability": "readWrite"},
            {"name": "memberCount", "type": "integer", "mutability": "READONLY"}
        ]});
        let caps = capabilities(
            Dialect::Generic,
            &FederationIdPlacement::Auto,
            &Fetched::Body(spc),
            &Fetched::Body(types(&[ENTERPRISE_SCHEMA])),
            &list(vec![core, enterprise, group]),
        );
        assert!(!caps.patch);
        assert!(
            caps.notes.iter().any(|n| n.contains("by PUT")),
            "{:?}",
            caps.notes
        );
        assert_eq!(
            names(&caps.user_read_only),
            vec!["groups".to_owned(), format!("{ENTERPRISE_SCHEMA}:manager")]
        );
        assert_eq!(names(&caps.group_read_only), vec!["memberCount"]);
    }

    #[test]
    fn a_path_the_schema_does_not_declare_is_not_planned() {
        let caps = capabilities(
            Dialect::Generic,
            &FederationIdPlacement::Path("urn:example:ext:User:sso".into()),
            &Fetched::Body(sf_spc()),
            &Fetched::Body(types(&[])),
            &list(vec![core_schema()]),
        );
        assert_eq!(
            caps.federation_id_path.as_deref(),
            Some("urn:example:ext:User:sso")
        );
        assert!(!caps.declares("federationId"));
        assert!(caps.notes.iter().any(|n| n.contains("not planned")));
    }

    #[test]
    fn missing_documents_take_the_safe_fallbacks_with_a_note_each() {
        for dialect in [Dialect::Salesforce, Dialect::Generic] {
            let caps = capabilities(
                dialect,
                &FederationIdPlacement::Auto,
                &Fetched::Missing("404".into()),
                &Fetched::Missing("404".into()),
                &Fetched::Missing("404".into()),
            );
            assert!(caps.patch && caps.filter && !caps.etag && !caps.sort);
            assert_eq!(caps.max_results, None);
            assert_eq!(caps.user_attributes, None);
            assert_eq!(caps.federation_id_path, None);
            let sf = dialect == Dialect::Salesforce;
            assert_eq!((caps.entitlements, caps.roles), (sf, sf));
            // SPC, resource types, schemas, federation id.
            assert_eq!(caps.notes.len(), 4, "{:?}", caps.notes);
            assert!(caps.notes.iter().all(|n| !n.contains('\n')));
            assert!(caps.notes[1].contains(if sf { "Salesforce" } else { "generic" }));
        }
    }

    #[test]
    fn garbage_never_panics_and_falls_back() {
        for junk in [
            json!(null),
            json!(42),
            json!("text"),
            json!([1, 2, 3]),
            json!({"Resources": "no"}),
            json!({"Resources": [null, 5, {"id": 7}, {"attributes": "x"}]}),
            json!({"patch": "yes", "filter": {"supported": 1, "maxResults": -3}}),
            json!({"id": USER_SCHEMA, "attributes": [null, {"name": 5}, {"name": "name", "subAttributes": 7}]}),
        ] {
            let f = Fetched::Body(junk.clone());
            let caps = capabilities(Dialect::Generic, &FederationIdPlacement::Auto, &f, &f, &f);
            assert!(caps.patch && caps.filter, "{junk}");
            assert_eq!(caps.max_results, None, "{junk}");
        }
        // A single schema document is read as a list of one.
        let f = Fetched::Body(core_schema());
        let caps = capabilities(Dialect::Generic, &FederationIdPlacement::Auto, &f, &f, &f);
        assert!(caps.declares("userName") && !caps.declares("title"));
    }

    #[test]
    fn schemas_without_the_core_user_schema_plan_everything() {
        let caps = capabilities(
            Dialect::Salesforce,
            &FederationIdPlacement::Auto,
            &Fetched::Body(sf_spc()),
            &Fetched::Body(types(&[])),
            &list(vec![sf_extension_schema()]),
        );
        assert_eq!(caps.user_attributes, None);
        assert!(caps.federation_id_path.is_some());
        assert!(caps.notes.iter().any(|n| n.contains("core User schema")));
    }

    #[test]
    fn off_sends_nothing() {
        let caps = capabilities(
            Dialect::Salesforce,
            &FederationIdPlacement::Off,
            &Fetched::Body(sf_spc()),
            &Fetched::Body(types(&[SALESFORCE_USER_EXTENSION])),
            &list(vec![core_schema(), sf_extension_schema()]),
        );
        assert_eq!(caps.federation_id_path, None);
        assert!(!caps.declares("federationId"));
    }
}
