//! The `[connections.source]` section: where the directory comes from (Duo Admin API or a
//! JSON file).

use super::raw::RawSource;
use super::validate::Validator;
use secrecy::SecretString;
use std::path::PathBuf;
use url::Url;

/// Where the directory comes from.
#[derive(Debug)]
pub enum SourceSettings {
    Duo(DuoSettings),
    File { path: PathBuf },
}

/// Duo Admin API access.
#[derive(Debug)]
pub struct DuoSettings {
    /// `https://{api_host}` or a full base URL (plain HTTP only on loopback).
    pub base_url: Url,
    pub integration_key: String,
    pub secret_key: SecretString,
    /// 2 or 5.
    pub sig_version: u8,
    pub sso_integration_key: Option<String>,
    pub page_size: u32,
}

impl Validator<'_> {
    pub(super) fn source(&mut self, s: RawSource, at: &str) -> Option<SourceSettings> {
        self.unknown::<RawSource>(at);
        match s.kind.as_deref() {
            Some("file") => match s.path {
                Some(p) => Some(SourceSettings::File {
                    path: self.relative(p),
                }),
                None => {
                    self.problem(
                        format!("{at}.path"),
                        "missing; the JSON directory file to read",
                    );
                    None
                }
            },
            Some("duo") | None => {
                let base_url = match (&s.api_host, &s.base_url) {
                    (Some(host), None) => {
                        let host = host
                            .trim()
                            .trim_start_matches("https://")
                            .trim_end_matches('/');
                        self.url(&format!("{at}.api_host"), &format!("https://{host}"))
                    }
                    (None, Some(url)) => self.url(&format!("{at}.base_url"), url),
                    (Some(_), Some(_)) => {
                        self.problem(
                            format!("{at}.api_host"),
                            "give api_host or base_url, not both",
                        );
                        None
                    }
                    (None, None) => {
                        self.problem(
                            format!("{at}.api_host"),
                            "missing; the Admin API hostname from the Duo Admin Panel (api-xxxxxxxx.duosecurity.com)",
                        );
                        None
                    }
                };
                let integration_key = s.integration_key.filter(|k| !k.is_empty());
                if integration_key.is_none() {
                    self.problem(
                        format!("{at}.integration_key"),
                        "missing; the Admin API application's integration key",
                    );
                }
                let secret_key = self.secret(
                    at,
                    "secret_key",
                    s.secret_key,
                    s.secret_key_env,
                    s.secret_key_file,
                );
                let sig_version = s.sig_version.unwrap_or(5);
                if sig_version != 2 && sig_version != 5 {
                    self.problem(
                        format!("{at}.sig_version"),
                        format!("{sig_version}: use 5 (default) or 2"),
                    );
                }
                let page_size = s.page_size.unwrap_or(300);
                if !(1..=300).contains(&page_size) {
                    self.problem(
                        format!("{at}.page_size"),
                        format!("{page_size}: Duo allows 1 to 300 users per page"),
                    );
                }
                Some(SourceSettings::Duo(DuoSettings {
                    base_url: base_url?,
                    integration_key: integration_key?,
                    secret_key: secret_key?,
                    sig_version,
                    sso_integration_key: s.sso_integration_key,
                    page_size,
                }))
            }
            Some(other) => {
                self.problem(
                    format!("{at}.kind"),
                    format!("{other:?}: use \"duo\" or \"file\""),
                );
                None
            }
        }
    }
}
