//! Errors of the SCIM client: typed, saying whether to retry, with messages an operator can act on.

use crate::config::Dialect;
use scimsync_core::ports::{Classify, Disposition};
use std::time::Duration;

/// Why the token endpoint refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFailure {
    /// Wrong consumer key or secret (or a Connected App where an External Client App is needed).
    BadClient,
    /// No Run As (execution) user for the client credentials flow.
    NoRunAsUser,
    /// The token was asked of login.salesforce.com instead of the My Domain.
    WrongDomain,
    /// Anything else the endpoint said.
    Other,
}

/// A failed SCIM or token call.
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    #[error("{}", token_message(*.failure, .error, .description, *.dialect))]
    Token {
        failure: TokenFailure,
        error: String,
        description: String,
        /// Whose words the hint uses.
        dialect: Dialect,
    },
    #[error("the token endpoint could not be reached or answered unexpectedly: {message}")]
    TokenTransport { message: String },
    #[error("{}", unauthorized_message(.detail, *.dialect))]
    Unauthorized {
        detail: String,
        /// Whose words the hint uses.
        dialect: Dialect,
    },
    #[error("{}", forbidden_message(.detail, *.dialect))]
    Forbidden {
        detail: String,
        /// Whose words the hint uses.
        dialect: Dialect,
    },
    #[error("the org's API request limit is exceeded ({detail}); retry later")]
    RequestLimit {
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("the target is rate limiting (429){}", after(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("the target failed with {status}: {detail}")]
    Server {
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("{what} failed in transit: {message}")]
    Transport { what: String, message: String },
    /// Refused by the target, or (`status` 0) by the client before sending, because the
    /// target declares it cannot be done.
    #[error("{}", refused_message(.what, *.status, .code.as_deref(), .detail))]
    Refused {
        what: String,
        status: u16,
        code: Option<String>,
        detail: String,
    },
    #[error("the target's answer to {what} is not valid: {message}")]
    InvalidResponse { what: String, message: String },
    #[error(
        "{what} was answered with a redirect ({status}) to {to_host}; redirects to another host are not followed, so credentials and records stay with the configured host: check the URL"
    )]
    Redirect {
        what: String,
        status: u16,
        to_host: String,
    },
    #[error(
        "the answer to {what} ({url}) is larger than {max} bytes (at least {seen}); stopped reading"
    )]
    TooLarge {
        what: String,
        url: String,
        seen: u64,
        max: u64,
    },
    #[error(
        "the target refused access tokens {}s after they were issued, {refreshes} times in a row: tokens expire faster than requests can use them; lengthen the token's lifetime (the session timeout of the External Client App) or lower the load", lifetime_text(.lifetime)
    )]
    TokensExpireTooFast { lifetime: Duration, refreshes: u32 },
    /// Every discovery document answered 404: the base URL is not a SCIM service's.
    #[error(
        "the target answered 404 to every discovery document under {base_url} (/ServiceProviderConfig(s), /ResourceTypes, /Schemas): the base URL is probably not the SCIM service's; {hint}"
    )]
    NotScim { base_url: String, hint: String },
    #[error("{0}")]
    Config(String),
}

fn lifetime_text(d: &Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn after(d: &Option<Duration>) -> String {
    d.map(|d| format!("; Retry-After {}s", d.as_secs()))
        .unwrap_or_default()
}

/// The refusal, with the fix when Salesforce says the userName is taken.
fn refused_message(what: &str, status: u16, code: Option<&str>, detail: &str) -> String {
    if status == 0 {
        return format!("{what} was not sent: {detail}");
    }
    let said = format!("the target refused {what} ({status}): {detail}");
    if code == Some("DUPLICATE_USERNAME") {
        format!(
            "{said}; the userName is taken, possibly by a user in another Salesforce org that this org cannot see; map userName to another source attribute or set a userName suffix (`user_name_suffix`, e.g. \".acme\") in the connection's mapping"
        )
    } else {
        said
    }
}

/// A 401 to a fresh token, with the fix in the dialect's words.
fn unauthorized_message(detail: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Salesforce => format!(
            "the target refused a fresh token with 401 ({detail}): the execution (Run As) user lacks the Manage Users permission"
        ),
        Dialect::Generic => format!(
            "the target refused a fresh token with 401 ({detail}): check that the bearer token (or the OAuth2 client's token) is one this SCIM service accepts (RFC 7644 §2: Authorization: Bearer), that it has not been revoked, and that the base URL is the service's SCIM root"
        ),
    }
}

/// A 403, with the fix in the dialect's words.
fn forbidden_message(detail: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Salesforce => format!(
            "the target answered 403 ({detail}): the External Client App lacks the \"Manage user data via APIs (api)\" OAuth scope"
        ),
        Dialect::Generic => format!(
            "the target answered 403 ({detail}): the token is valid but not allowed to manage users and groups; grant the OAuth2 client (or the token's subject) the scopes or permissions the SCIM service requires for /Users and /Groups"
        ),
    }
}

fn token_message(
    failure: TokenFailure,
    error: &str,
    description: &str,
    dialect: Dialect,
) -> String {
    let said = format!("the token endpoint answered {error}: {description}");
    // Run As and My Domain failures are recognised by Salesforce's own words: the token
    // endpoint is Salesforce's whatever the dialect, so its advice stays.
    if dialect == Dialect::Generic && failure == TokenFailure::BadClient {
        return format!(
            "{said}. Check the client id and secret, and how the client authenticates to the token endpoint: RFC 6749 §2.3.1 allows HTTP Basic (`client_auth = \"basic\"`, what most servers expect) or the secret in the form body (`client_auth = \"form\"`); use the one the authorization server accepts"
        );
    }
    match failure {
        TokenFailure::BadClient => format!(
            "{said}. Check the Consumer Key and Consumer Secret, and use an External Client App (not a Connected App, which can no longer be created)"
        ),
        TokenFailure::NoRunAsUser => format!(
            "{said}. Assign a Run As (execution) user to the client credentials flow in the External Client App's policies"
        ),
        TokenFailure::WrongDomain => format!(
            "{said}. Use the org's My Domain token URL (https://{{My Domain}}/services/oauth2/token), not login.salesforce.com"
        ),
        TokenFailure::Other => said,
    }
}

impl ScimError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RequestLimit { .. }
                | Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Transport { .. }
        )
    }

    /// How long the target asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RequestLimit { retry_after, .. }
            | Self::RateLimited { retry_after }
            | Self::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl Classify for ScimError {
    fn disposition(&self) -> Disposition {
        match self {
            e if e.is_retryable() => Disposition::Retryable {
                after: e.retry_after(),
            },
            Self::Refused { code, .. } => Disposition::Refused { code: code.clone() },
            Self::InvalidResponse { .. } => Disposition::Refused { code: None },
            _ => Disposition::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_username_says_how_to_fix_it_and_stays_refused() {
        let e = ScimError::Refused {
            what: "creating user ada@example.com".into(),
            status: 409,
            code: Some("DUPLICATE_USERNAME".into()),
            detail: "DUPLICATE_USERNAME: Duplicate Username".into(),
        };
        let text = e.to_string();
        assert!(text.starts_with("the target refused creating user ada@example.com (409)"));
        assert!(text.contains("another Salesforce org"), "{text}");
        assert!(text.contains("user_name_suffix"), "{text}");
        assert_eq!(
            e.disposition(),
            Disposition::Refused {
                code: Some("DUPLICATE_USERNAME".into())
            }
        );
        let other = ScimError::Refused {
            what: "creating user x".into(),
            status: 409,
            code: Some("REQUIRED_FIELD_MISSING".into()),
            detail: "d".into(),
        };
        assert_eq!(
            other.to_string(),
            "the target refused creating user x (409): d"
        );
    }
}
