//! How to reach a SCIM target.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

/// The dialect of SCIM the target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// Salesforce: member PATCH as `value: {members: [...]}`, path-less replace for users,
    /// `/ServiceProviderConfigs`, `CODE:message;` error details, `REQUEST_LIMIT_EXCEEDED` as 403.
    Salesforce,
    /// Plain RFC 7644.
    Generic,
}

/// How the client secret reaches the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// In the form body (Salesforce).
    Form,
    /// HTTP Basic (RFC 6749's default).
    Basic,
}

/// How the client authenticates.
pub enum Auth {
    /// OAuth2 client credentials.
    ClientCredentials {
        token_url: Url,
        client_id: String,
        client_secret: SecretString,
        method: ClientAuthMethod,
    },
    /// A static bearer token issued by the service.
    Bearer(SecretString),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientCredentials {
                token_url,
                client_id,
                method,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("token_url", &token_url.as_str())
                .field("client_id", client_id)
                .field("client_secret", &"[redacted]")
                .field("method", method)
                .finish(),
            Self::Bearer(_) => f.write_str("Bearer([redacted])"),
        }
    }
}

/// Everything the client needs.
#[derive(Debug)]
pub struct ScimConfig {
    /// The SCIM base URL (Salesforce: `https://{My Domain}/services/scim/v2`).
    pub base_url: Url,
    pub auth: Auth,
    pub dialect: Dialect,
    /// Requests per second, shared by every request of this client.
    pub requests_per_second: u32,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Per request.
    pub timeout: Duration,
    /// Tries per request (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubled each retry, with jitter.
    pub backoff_base: Duration,
    /// Largest wait between tries (also caps `Retry-After`).
    pub backoff_max: Duration,
    /// Users and groups per list page (Salesforce serves at most 200).
    pub page_size: u32,
    /// Members added or removed per group PATCH.
    pub member_batch_size: usize,
    /// Where the SSO identifier (Salesforce's Federation ID) is written and read.
    pub federation_id: FederationIdPlacement,
    /// Most bytes one answer may have; a larger one fails the call, naming the URL.
    pub max_body_bytes: usize,
}

/// Default [`ScimConfig::max_body_bytes`]: 64 MiB (a page of 200 users is well under 1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Where the SSO identifier (Salesforce's Federation ID) lives on the target's users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FederationIdPlacement {
    /// Found by discovery: the Salesforce user extension's `federationIdentifier` when the
    /// target declares it, else nowhere. Before any discovery the Salesforce dialect assumes
    /// that attribute and the generic dialect sends none.
    #[default]
    Auto,
    /// A SCIM attribute path: a core attribute (`nickName`, `name.middleName`) or an extension
    /// attribute with its schema URN
    /// (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`).
    Path(String),
    /// Never sent nor read: SSO matches on the userName.
    Off,
}

impl FederationIdPlacement {
    /// Parses the configuration value: `auto`, `off` or a SCIM attribute path. Refuses
    /// `userName`, `externalId` and `id` (they match accounts) and paths that are not a plain
    /// attribute (filters, spaces). The error is a message for the operator.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        if t.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        crate::resources::AttrPath::parse(t)?;
        Ok(Self::Path(t.to_owned()))
    }
}

impl ScimConfig {
    /// Defaults: 20 requests/s, 8 in flight, 30 s timeout, 5 attempts from 500 ms up to 60 s,
    /// pages of 200, member batches of 100, the Federation ID placed by discovery (`Auto`).
    pub fn new(base_url: Url, auth: Auth, dialect: Dialect) -> Self {
        Self {
            base_url,
            auth,
            dialect,
            requests_per_second: 20,
            max_concurrency: 8,
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            page_size: 200,
            member_batch_size: 100,
            federation_id: FederationIdPlacement::Auto,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}
