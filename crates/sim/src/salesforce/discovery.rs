//! `/Schemas` and `/ResourceTypes` (RFC 7643 §7 and §6): what this instance accepts, following
//! its mode and [`Reading`]. A client that reads them learns, for instance, whether the org
//! declares the Federation ID extension, whether a last name is required, and whether
//! `/Entitlements` and `/Roles` exist.

use super::rules::{ENTERPRISE, SF_USER_EXT};
use super::{Reading, SimMode};
use serde_json::{Value, json};

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const SF_ENTITLEMENT: &str = "urn:salesforce:schemas:extension:1.0:Entitlement";
const SF_ROLE: &str = "urn:salesforce:schemas:extension:1.0:Role";

/// One attribute definition with RFC 7643 §7's characteristics.
struct Attr {
    name: &'static str,
    kind: &'static str,
    multi: bool,
    required: bool,
    case_exact: bool,
    mutability: &'static str,
    uniqueness: &'static str,
    description: &'static str,
    sub: Vec<Attr>,
}

impl Attr {
    fn new(name: &'static str, kind: &'static str, description: &'static str) -> Self {
        Self {
            name,
            kind,
            multi: false,
            required: false,
            case_exact: false,
            mutability: "readWrite",
            uniqueness: "none",
            description,
            sub: Vec::new(),
        }
    }
    fn string(name: &'static str, description: &'static str) -> Self {
        Self::new(name, "string", description)
    }
    fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }
    fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn read_only(mut self) -> Self {
        self.mutability = "readOnly";
        self
    }
    fn immutable(mut self) -> Self {
        self.mutability = "immutable";
        self
    }
    fn unique(mut self, uniqueness: &'static str) -> Self {
        self.uniqueness = uniqueness;
        self
    }
    fn with(mut self, sub: Vec<Attr>) -> Self {
        self.sub = sub;
        self
    }
    fn json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.kind,
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": "default",
            "uniqueness": self.uniqueness,
        });
        if self.kind == "reference" {
            v["referenceTypes"] = json!(["external"]);
        }
        if !self.sub.is_empty() {
            v["subAttributes"] = self.sub.iter().map(Attr::json).collect();
        }
        v
    }
}

fn complex(name: &'static str, description: &'static str) -> Attr {
    Attr::new(name, "complex", description)
}

fn boolean(name: &'static str, description: &'static str) -> Attr {
    Attr::new(name, "boolean", description)
}

fn schema(id: &str, name: &str, description: &str, attrs: &[Attr], base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(Attr::json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

fn user_attributes(mode: SimMode, reading: &Reading) -> Vec<Attr> {
    let salesforce = mode == SimMode::Salesforce;
    let mut attrs = vec![
        Attr::string(
            "userName",
            "The login; an email address, lower-cased, unique (across all orgs in Salesforce)",
        )
        .required(true)
        .unique(if salesforce { "global" } else { "server" }),
        complex("name", "The user's name").with(vec![
            Attr::string("formatted", "Given and family names joined").read_only(),
            Attr::string("familyName", "The last name (User.LastName)")
                .required(reading.last_name_required),
            Attr::string("givenName", "The first name"),
        ]),
        Attr::string(
            "displayName",
            "The name shown; given and family names when absent",
        ),
        Attr::string(
            "nickName",
            "The community nickname: at most 40 characters, unique in the org",
        )
        .unique("server"),
        Attr::string("title", "The job title"),
        Attr::string("userType", "Always Standard here").read_only(),
        boolean(
            "active",
            "Deactivated users can't log in and can't join groups",
        ),
        complex("emails", "The email; a change waits for verification")
            .multi()
            .required(salesforce)
            .with(vec![
                Attr::string("value", "The address"),
                Attr::string("type", "work"),
                boolean("primary", "Always true"),
            ]),
        complex("phoneNumbers", "At most one phone per request")
            .multi()
            .with(vec![
                Attr::string("value", "The number"),
                Attr::string("type", "work, mobile or fax"),
            ]),
        complex(
            "entitlements",
            "The profile (exactly one) and the permission sets",
        )
        .multi()
        .required(salesforce)
        .with(vec![
            Attr::string("value", "The profile or permission set id").case_exact(),
            Attr::string("display", "Its name").read_only(),
            Attr::string("type", "Profile or PermissionSet").read_only(),
            boolean("primary", "True for the profile").read_only(),
        ]),
        complex("roles", "At most one role").multi().with(vec![
            Attr::string("value", "The role id").case_exact(),
            Attr::string("display", "Its name").read_only(),
        ]),
        Attr::string("externalId", "The provisioning client's identifier").case_exact(),
    ];
    if salesforce {
        for (name, description) in [
            ("preferredLanguage", "Set from the org's defaults"),
            ("locale", "Set from the org's defaults"),
            ("timezone", "Set from the org's defaults"),
            ("emailEncodingKey", "Set from the org's defaults"),
        ] {
            attrs.push(Attr::string(name, description).read_only());
        }
    }
    attrs
}

fn enterprise_attributes() -> Vec<Attr> {
    vec![
        Attr::string("employeeNumber", "The employee number"),
        Attr::string("costCenter", "The cost center"),
        Attr::string("organization", "The organization"),
        Attr::string("division", "The division"),
        Attr::string("department", "The department"),
        complex("manager", "The user's manager").with(vec![
            Attr::string("value", "The manager's user id").case_exact(),
            Attr::new("$ref", "reference", "The manager's URI"),
            Attr::string("displayName", "The manager's name").read_only(),
        ]),
    ]
}

fn group_attributes(mode: SimMode) -> Vec<Attr> {
    let mut attrs = vec![
        Attr::string("displayName", "The group's label, at most 40 characters").required(true),
        complex("members", "The group's users").multi().with(vec![
            Attr::string("value", "The user's id")
                .case_exact()
                .immutable(),
            Attr::new("$ref", "reference", "The user's URI").immutable(),
            Attr::string("type", "User").immutable(),
        ]),
    ];
    if mode == SimMode::Salesforce {
        attrs.push(Attr::string("type", "The public group's type: Regular").read_only());
    }
    attrs
}

/// The schemas served by `GET /Schemas`, in order.
pub fn schemas(mode: SimMode, reading: &Reading, base: &str) -> Vec<Value> {
    let salesforce = mode == SimMode::Salesforce;
    let mut out = vec![
        schema(
            CORE_USER,
            "User",
            "User Account",
            &user_attributes(mode, reading),
            base,
        ),
        schema(
            ENTERPRISE,
            "EnterpriseUser",
            "Enterprise User",
            &enterprise_attributes(),
            base,
        ),
        schema(CORE_GROUP, "Group", "Group", &group_attributes(mode), base),
    ];
    if salesforce && reading.federation_extension {
        out.push(schema(
            SF_USER_EXT,
            "SalesforceUser",
            "Salesforce's user attributes",
            &[Attr::string(
                "federationIdentifier",
                "The Federation ID (User.FederationIdentifier) SAML single sign-on matches on",
            )
            .case_exact()
            .unique("server")],
            base,
        ));
    }
    if salesforce && reading.catalogue_endpoints {
        let mut entitlement = vec![
            Attr::string("displayName", "The profile's or permission set's name").read_only(),
            Attr::string("type", "Profile or PermissionSet").read_only(),
        ];
        if reading.allows_groups_extension {
            entitlement.push(
                Attr::string(
                    "userLicense",
                    "A profile's licence (in the object named by this schema's URN)",
                )
                .read_only(),
            );
            entitlement.push(
                boolean(
                    "allowsGroups",
                    "Whether a profile's users may join groups (in the object named by this schema's URN)",
                )
                .read_only(),
            );
        }
        out.push(schema(
            SF_ENTITLEMENT,
            "Entitlement",
            "Profiles and permission sets",
            &entitlement,
            base,
        ));
        out.push(schema(
            SF_ROLE,
            "Role",
            "Roles",
            &[Attr::string("displayName", "The role's name").read_only()],
            base,
        ));
    }
    out
}

fn resource_type(
    id: &str,
    endpoint: &str,
    description: &str,
    schema: &str,
    extensions: &[(&str, bool)],
    base: &str,
) -> Value {
    let mut v = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": id,
        "name": id,
        "endpoint": endpoint,
        "description": description,
        "schema": schema,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{id}")},
    });
    if !extensions.is_empty() {
        v["schemaExtensions"] = extensions
            .iter()
            .map(|(s, required)| json!({"schema": s, "required": required}))
            .collect();
    }
    v
}

/// The resource types served by `GET /ResourceTypes`, in order.
pub fn resource_types(mode: SimMode, reading: &Reading, base: &str) -> Vec<Value> {
    let salesforce = mode == SimMode::Salesforce;
    let mut user_extensions = vec![(ENTERPRISE, false)];
    if salesforce && reading.federation_extension {
        user_extensions.push((SF_USER_EXT, false));
    }
    let mut out = vec![
        resource_type(
            "User",
            "/Users",
            "User Account",
            CORE_USER,
            &user_extensions,
            base,
        ),
        resource_type("Group", "/Groups", "Group", CORE_GROUP, &[], base),
    ];
    if salesforce && reading.catalogue_endpoints {
        out.push(resource_type(
            "Entitlement",
            "/Entitlements",
            "Profiles and permission sets",
            SF_ENTITLEMENT,
            &[],
            base,
        ));
        out.push(resource_type("Role", "/Roles", "Roles", SF_ROLE, &[], base));
    }
    out
}
