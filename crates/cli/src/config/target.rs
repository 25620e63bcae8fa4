//! The `[connections.target]` section: the SCIM server, how it authenticates us, and how hard
//! we may drive it.

use super::MAX_CONCURRENCY_LIMIT;
use super::raw::RawTarget;
use super::validate::Validator;
use scimsync_core::policy::TargetKind;
use scimsync_scim::FederationIdPlacement;
use secrecy::SecretString;
use std::time::Duration;
use url::Url;

/// How the target authenticates us.
#[derive(Debug)]
pub enum TargetAuth {
    ClientCredentials {
        token_url: Url,
        client_id: String,
        client_secret: SecretString,
        /// Send the secret by HTTP Basic rather than in the form body.
        basic: bool,
    },
    Bearer(SecretString),
}

/// The SCIM target.
#[derive(Debug)]
pub struct TargetSettings {
    pub kind: TargetKind,
    pub base_url: Url,
    pub auth: TargetAuth,
    pub requests_per_second: u32,
    pub max_concurrency: usize,
    pub timeout: Duration,
    /// Where the SSO identifier (Salesforce's Federation ID) goes (`federation_id`; default
    /// `auto`: wherever discovery finds the Salesforce extension's `federationIdentifier`).
    pub federation_id: FederationIdPlacement,
}

impl Validator<'_> {
    pub(super) fn target(&mut self, t: RawTarget, at: &str) -> Option<TargetSettings> {
        self.unknown::<RawTarget>(at);
        let federation_id = match t.federation_id.as_deref() {
            None => FederationIdPlacement::Auto,
            Some(text) => FederationIdPlacement::parse(text).unwrap_or_else(|e| {
                self.problem(format!("{at}.federation_id"), e);
                FederationIdPlacement::Auto
            }),
        };
        let kind = match t.kind.as_deref() {
            Some("salesforce") | None => TargetKind::Salesforce,
            Some("generic") => TargetKind::Generic,
            Some(other) => {
                self.problem(
                    format!("{at}.kind"),
                    format!("{other:?}: use \"salesforce\" or \"generic\""),
                );
                TargetKind::Salesforce
            }
        };
        let base_url = match &t.base_url {
            Some(u) => self.url(&format!("{at}.base_url"), u),
            None => {
                self.problem(
                    format!("{at}.base_url"),
                    "missing; Salesforce: https://{My Domain}/services/scim/v2",
                );
                None
            }
        };
        let auth = if t.bearer_token_env.is_some() || t.bearer_token_file.is_some() {
            self.secret(
                at,
                "bearer_token",
                None,
                t.bearer_token_env,
                t.bearer_token_file,
            )
            .map(TargetAuth::Bearer)
        } else {
            let token_url = match &t.token_url {
                Some(u) => {
                    let url = self.url(&format!("{at}.token_url"), u);
                    if let Some(host) = url.as_ref().and_then(|u| u.host_str().map(str::to_owned))
                        && kind == TargetKind::Salesforce
                        && (host.eq_ignore_ascii_case("login.salesforce.com")
                            || host.eq_ignore_ascii_case("test.salesforce.com"))
                    {
                        self.problem(
                            format!("{at}.token_url"),
                            "use your org's My Domain (https://{My Domain}/services/oauth2/token); login.salesforce.com answers client credentials with \"request not supported on this domain\"",
                        );
                    }
                    url
                }
                None => {
                    self.problem(
                        format!("{at}.token_url"),
                        "missing; Salesforce: https://{My Domain}/services/oauth2/token",
                    );
                    None
                }
            };
            let client_id = t.client_id.filter(|c| !c.is_empty());
            if client_id.is_none() {
                self.problem(
                    format!("{at}.client_id"),
                    "missing; the External Client App's Consumer Key",
                );
            }
            let secret = self.secret(
                at,
                "client_secret",
                t.client_secret,
                t.client_secret_env,
                t.client_secret_file,
            );
            let basic = match t.client_auth.as_deref() {
                None | Some("form") => false,
                Some("basic") => true,
                Some(other) => {
                    self.problem(
                        format!("{at}.client_auth"),
                        format!("{other:?}: use \"form\" (Salesforce) or \"basic\""),
                    );
                    false
                }
            };
            match (token_url, client_id, secret) {
                (Some(token_url), Some(client_id), Some(client_secret)) => {
                    Some(TargetAuth::ClientCredentials {
                        token_url,
                        client_id,
                        client_secret,
                        basic,
                    })
                }
                _ => None,
            }
        };
        let rps = self.range(
            &format!("{at}.requests_per_second"),
            t.requests_per_second,
            20,
            1..=10_000,
        ) as u32;
        let max_concurrency = self.range(
            &format!("{at}.max_concurrency"),
            t.max_concurrency,
            8,
            1..=MAX_CONCURRENCY_LIMIT,
        ) as usize;
        let timeout_seconds = self.range(
            &format!("{at}.timeout_seconds"),
            t.timeout_seconds,
            30,
            1..=3_600,
        );
        Some(TargetSettings {
            kind,
            base_url: base_url?,
            auth: auth?,
            requests_per_second: rps,
            max_concurrency,
            timeout: Duration::from_secs(timeout_seconds),
            federation_id,
        })
    }
}
