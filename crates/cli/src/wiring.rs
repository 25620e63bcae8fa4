//! Building connections from settings: the source reader and the SCIM client.

use crate::config::{ConnectionSettings, SourceSettings, TargetAuth, TargetSettings};
use scimsync_core::policy::TargetKind;
use scimsync_core::ports::{Source, Target as _};
use scimsync_core::source::SourceSnapshot;
use scimsync_directory::{
    DirectoryError, DuoConfig, DuoEndpoint, DuoSource, FileSource, SigVersion,
};
use scimsync_engine::Connection;
use scimsync_scim::{Auth, ClientAuthMethod, Dialect, ScimClient, ScimConfig};

/// One step of `scimsync check`.
#[derive(Debug, Clone)]
pub struct CheckStep {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The source of a connection: Duo's Admin API or a JSON file.
#[derive(Debug)]
pub enum AnySource {
    Duo(Box<DuoSource>),
    File(FileSource),
}

impl Source for AnySource {
    type Error = DirectoryError;

    async fn read(&self) -> Result<SourceSnapshot, DirectoryError> {
        match self {
            Self::Duo(s) => s.read().await,
            Self::File(s) => s.read().await,
        }
    }
}

/// A connection as the binary runs it.
pub type Conn = Connection<AnySource, ScimClient>;

pub fn source(settings: &SourceSettings) -> anyhow::Result<AnySource> {
    Ok(match settings {
        SourceSettings::File { path } => AnySource::File(FileSource::new(path)),
        SourceSettings::Duo(d) => {
            let config = DuoConfig {
                endpoint: DuoEndpoint::BaseUrl(d.base_url.clone()),
                integration_key: d.integration_key.clone(),
                secret_key: d.secret_key.clone(),
                sig_version: if d.sig_version == 2 {
                    SigVersion::V2Sha512
                } else {
                    SigVersion::V5
                },
                page_size: d.page_size,
                sso_integration_key: d.sso_integration_key.clone(),
                ..DuoConfig::new(
                    DuoEndpoint::BaseUrl(d.base_url.clone()),
                    d.integration_key.clone(),
                    d.secret_key.clone(),
                )
            };
            AnySource::Duo(Box::new(DuoSource::new(config)?))
        }
    })
}

pub fn target(settings: &TargetSettings, member_batch_size: usize) -> anyhow::Result<ScimClient> {
    let auth = match &settings.auth {
        TargetAuth::Bearer(token) => Auth::Bearer(token.clone()),
        TargetAuth::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            basic,
        } => Auth::ClientCredentials {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            method: if *basic {
                ClientAuthMethod::Basic
            } else {
                ClientAuthMethod::Form
            },
        },
    };
    let dialect = match settings.kind {
        TargetKind::Salesforce => Dialect::Salesforce,
        TargetKind::Generic => Dialect::Generic,
    };
    let config = ScimConfig {
        requests_per_second: settings.requests_per_second,
        max_concurrency: settings.max_concurrency,
        timeout: settings.timeout,
        member_batch_size,
        ..ScimConfig::new(settings.base_url.clone(), auth, dialect)
    };
    Ok(ScimClient::new(config)?)
}

pub fn connection(c: &ConnectionSettings) -> anyhow::Result<Conn> {
    Ok(Connection {
        name: c.name.clone(),
        source: source(&c.source)?,
        target: target(&c.target, c.policy.member_batch_size)?,
        policy: c.policy.clone(),
    })
}

/// Walks a connection: the source (one signed read), then the target step by step, then the
/// governance rules against the target's catalogue.
pub async fn check(c: &ConnectionSettings) -> Vec<CheckStep> {
    let mut steps = Vec::new();
    let mut push = |name: &str, ok: bool, detail: String| {
        steps.push(CheckStep {
            name: name.to_owned(),
            ok,
            detail,
        });
    };
    let conn = match connection(c) {
        Ok(conn) => conn,
        Err(e) => {
            push("connection", false, format!("{e:#}"));
            return steps;
        }
    };
    let snapshot = match &conn.source {
        AnySource::Duo(d) => match d.check().await {
            Ok(report) => {
                push("source", true, report.to_string());
                None
            }
            Err(e) => {
                push("source", false, scimsync_engine::chain(&e));
                None
            }
        },
        AnySource::File(f) => match f.read().await {
            Ok(s) => {
                push(
                    "source",
                    true,
                    format!("{} users, {} groups", s.users.len(), s.groups.len()),
                );
                Some(s)
            }
            Err(e) => {
                push("source", false, scimsync_engine::chain(&e));
                None
            }
        },
    };
    let mut target_ok = true;
    for step in conn.target.check().await {
        target_ok &= step.ok;
        push(&format!("target {}", step.name), step.ok, step.detail);
    }
    if target_ok {
        match conn
            .target
            .read(scimsync_core::ports::ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
        {
            Ok(t) => {
                let groups = snapshot.map(|s| s.groups).unwrap_or_default();
                let resolved =
                    scimsync_core::governance::resolve(&c.policy.governance, &t.catalogue, &groups);
                match resolved {
                    Ok(_) => push(
                        "governance",
                        true,
                        "every profile, permission set and role exists on the target".into(),
                    ),
                    Err(problems) => {
                        let catalogue_problems: Vec<String> = problems
                            .iter()
                            .filter(|p| {
                                !p.path.ends_with(".groups") && !p.path.contains(".groups[")
                            })
                            .map(|p| p.to_string())
                            .collect();
                        if catalogue_problems.is_empty() {
                            push(
                                "governance",
                                true,
                                "every profile, permission set and role exists on the target"
                                    .into(),
                            );
                        } else {
                            push("governance", false, catalogue_problems.join("; "));
                        }
                    }
                }
            }
            Err(e) => push("governance", false, scimsync_engine::chain(&e)),
        }
    }
    steps
}
