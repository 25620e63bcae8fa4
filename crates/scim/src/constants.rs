//! SCIM URNs, paths and header names in one place.

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Salesforce's user extension; carries `federationIdentifier`. No public source shows how
/// Salesforce's SCIM exposes the Federation ID: this URN is scimsync's assumption (unconfirmed),
/// shared with the emulator.
pub const SALESFORCE_USER_EXTENSION: &str = "urn:salesforce:schemas:extension:1.0:User";
/// Where the emulator (and, by assumption, Salesforce) describes a profile's licence.
pub const SALESFORCE_ENTITLEMENT_EXTENSION: &str =
    "urn:salesforce:schemas:extension:1.0:Entitlement";
pub const SCIM_JSON: &str = "application/scim+json";
pub const SFORCE_LIMIT_INFO: &str = "sforce-limit-info";
