//! JSON rendering of users, groups and errors.

use serde_json::{Value, json};

use super::SimMode;
use super::errors::SimError;
use super::rules::{ENTERPRISE, SF_USER_EXT};
use super::state::{SimGroup, SimUser, State};

impl SimError {
    /// The error body in the mode's shape: Salesforce's `CODE:message;` detail and numeric
    /// status, or RFC 7644's string status and `scimType`.
    pub fn body(&self, mode: SimMode) -> Value {
        match mode {
            SimMode::Salesforce => json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "detail": format!("{}:{};", self.code, self.message),
                "status": self.status,
            }),
            SimMode::Generic => {
                let mut v = json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "detail": self.message,
                    "status": self.status.to_string(),
                });
                if let Some(t) = self.scim_type {
                    v["scimType"] = json!(t);
                }
                v
            }
        }
    }
}

impl State {
    /// A user resource as GET returns it.
    pub fn user_json(&self, u: &SimUser, base: &str) -> Value {
        let profiles = &self.catalogue.profiles;
        let mut entitlements = Vec::new();
        if let Some(p) = &u.profile {
            let name = profiles.iter().find(|x| x.id == *p).map(|x| x.name.clone());
            entitlements.push(json!({"value": p, "$ref": format!("/Entitlements/{p}"), "display": name, "type": "Profile", "primary": true}));
        }
        for s in &u.permission_sets {
            let name = self
                .catalogue
                .permission_sets
                .iter()
                .find(|x| x.id == *s)
                .map(|x| x.name.clone());
            entitlements.push(json!({"value": s, "$ref": format!("/Entitlements/{s}"), "display": name, "type": "PermissionSet", "primary": false}));
        }
        let roles: Vec<Value> = u
            .role
            .iter()
            .map(|r| {
                let name = self
                    .catalogue
                    .roles
                    .iter()
                    .find(|x| x.id == *r)
                    .map(|x| x.name.clone());
                json!({"value": r, "display": name})
            })
            .collect();
        let formatted = [u.given_name.as_deref(), u.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let mut v = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, SF_USER_EXT],
            "id": u.id,
            "userName": u.user_name,
            "name": {"formatted": formatted, "givenName": u.given_name, "familyName": u.family_name},
            "displayName": u.display_name.clone().unwrap_or(formatted),
            "nickName": u.nick_name,
            "emails": [{"type": "work", "primary": true, "value": u.email}],
            "phoneNumbers": u.phones.iter().map(|(k, n)| json!({"type": k, "value": n})).collect::<Vec<_>>(),
            "userType": "Standard",
            "active": u.active,
            "entitlements": entitlements,
            "roles": roles,
            ENTERPRISE: u.enterprise,
            SF_USER_EXT: {"federationIdentifier": u.federation_id},
            "meta": {
                "resourceType": "User",
                "location": format!("{base}/Users/{}", u.id),
                "version": format!("{:040x}", u.version),
            }
        });
        if !self.reading.federation_extension {
            // An org without the extension neither lists nor returns it.
            if let Some(obj) = v.as_object_mut() {
                obj.remove(SF_USER_EXT);
            }
            v["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]);
        }
        if let Some(e) = &u.external_id {
            v["externalId"] = json!(e);
        }
        if let Some(t) = &u.title {
            v["title"] = json!(t);
        }
        if self.mode == SimMode::Salesforce {
            v["preferredLanguage"] = json!("en_US");
            v["emailEncodingKey"] = json!("UTF-8");
            v["locale"] = json!("en_US");
            v["timezone"] = json!("America/Los_Angeles");
        }
        v
    }

    /// A group resource as GET returns it.
    pub fn group_json(&self, g: &SimGroup, base: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": g.id,
            "displayName": g.display_name,
            "type": "Regular",
            "members": g.members.iter().map(|m| json!({"value": m, "type": "User", "$ref": format!("{base}/Users/{m}")})).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Group",
                "location": format!("{base}/Groups/{}", g.id),
                "version": format!("{:040x}", g.version),
            }
        })
    }
}
