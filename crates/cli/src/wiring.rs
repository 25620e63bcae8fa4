//! Building connections from settings: the source reader and the SCIM client.

use crate::config::{ConnectionSettings, SourceSettings, TargetAuth, TargetSettings};
use scimsync_core::policy::{Governance, Policy, Problem, TargetKind};
use scimsync_core::ports::{ReadScope, Source, Target as _};
use scimsync_core::source::{DirectoryGroup, SourceSnapshot};
use scimsync_core::target::{Catalogue, TargetCapabilities};
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
    /// Not a failure, but worth the operator's attention (printed with `!`).
    pub warning: bool,
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
        federation_id: settings.federation_id.clone(),
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
            warning: false,
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
                // The whole read, as a run does it: the names the configuration uses are
                // resolved against what the source holds.
                match conn.source.read().await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        push("source read", false, scimsync_engine::chain(&e));
                        None
                    }
                }
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
    // The groups of the scope and of the rules, resolved as the planner does (a name the
    // source lacks fails the run; here it fails the check, with the groups that exist).
    if let Some(source) = &snapshot {
        match scimsync_core::governance::resolve_scope(&c.policy.scope, source) {
            Ok(_) => push(
                "scope",
                true,
                "every scope group exists in the source".into(),
            ),
            Err(problems) => push("scope", false, joined(&problems)),
        }
        let rule_groups = group_problems(&c.policy.governance, &source.groups);
        if rule_groups.is_empty() {
            push(
                "rule groups",
                true,
                "every group the rules name exists in the source".into(),
            );
        } else {
            push("rule groups", false, joined(&rule_groups));
        }
    }
    let mut target_ok = true;
    for step in conn.target.check().await {
        target_ok &= step.ok;
        push(&format!("target {}", step.name), step.ok, step.detail);
    }
    if target_ok && let Some(caps) = conn.target.capabilities() {
        for (name, detail, warning) in discovery_lines(&caps, &c.policy) {
            steps.push(CheckStep {
                name: name.to_owned(),
                ok: true,
                detail,
                warning,
            });
        }
    }
    if target_ok {
        let scope = ReadScope {
            groups: false,
            catalogue: true,
        };
        let mut push = |name: &str, ok: bool, detail: String| {
            steps.push(CheckStep {
                name: name.to_owned(),
                ok,
                detail,
                warning: false,
            });
        };
        match conn.target.read(scope).await {
            Ok(t) => {
                let groups = snapshot.map(|s| s.groups).unwrap_or_default();
                // Group names were checked against the source above.
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
                            .filter(|p| !is_group_problem(p))
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

/// Whether a problem of [`scimsync_core::governance::resolve`] is about a source group (and
/// not about the target's catalogue).
fn is_group_problem(p: &Problem) -> bool {
    p.path.ends_with(".groups") || p.path.contains(".groups[")
}

/// The governance problems about source groups, as the planner finds them (the catalogue is
/// left to the target's step: an empty one here makes no group problem).
fn group_problems(governance: &Governance, groups: &[DirectoryGroup]) -> Vec<Problem> {
    match scimsync_core::governance::resolve(governance, &Catalogue::default(), groups) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.into_iter().filter(is_group_problem).collect(),
    }
}

/// Problems on one line, each with its path.
fn joined(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `check` says of a discovery: the mapped attributes the target does not declare, and
/// what SSO matches on. `(step name, detail, warning)`.
pub(crate) fn discovery_lines(
    caps: &TargetCapabilities,
    policy: &Policy,
) -> Vec<(&'static str, String, bool)> {
    let mut lines = Vec::new();
    match &caps.user_attributes {
        None => lines.push((
            "target attributes",
            "the target's schema is unknown; every mapped attribute is sent".to_owned(),
            false,
        )),
        Some(_) => {
            // The Federation ID has a line of its own (what SSO matches on).
            let missing: Vec<&str> = scimsync_core::planner::mapped_attributes(policy)
                .into_iter()
                .filter(|a| *a != "federationId" && !caps.declares(a))
                .collect();
            if missing.is_empty() {
                lines.push((
                    "target attributes",
                    "the target declares every mapped attribute".to_owned(),
                    false,
                ));
            } else {
                lines.push((
                    "target attributes",
                    format!(
                        "mapped but not declared by the target, so they will not be sent: {}",
                        missing.join(", ")
                    ),
                    true,
                ));
            }
        }
    }
    match (&caps.federation_id_path, caps.declares("federationId")) {
        (Some(path), true) => {
            lines.push(("SSO matches on", format!("Federation ID at {path}"), false))
        }
        (path, _) => {
            let why = match path {
                Some(p) => format!("the target does not declare {p}"),
                None => "no Federation ID attribute declared".to_owned(),
            };
            lines.push((
                "SSO matches on",
                format!(
                    "userName ({why}; set the SAML identity type to Username, or set `federation_id = \"<path>\"` in the connection's target section)"
                ),
                true,
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimsync_core::policy::RuleSpec;
    use std::collections::BTreeSet;

    #[test]
    fn check_lists_undeclared_mapped_attributes_and_the_sso_match() {
        let mut policy = Policy::default();
        policy.mapping.title = Some(scimsync_core::policy::SourceAttribute::FirstName);
        policy.mapping.department = Some(scimsync_core::policy::SourceAttribute::LastName);
        policy.governance.baseline = Some(RuleSpec {
            profile: "Standard User".into(),
            permission_sets: vec![],
            role: None,
        });
        let declared: BTreeSet<String> = [
            "userName",
            "externalId",
            "name.givenName",
            "name.familyName",
            "displayName",
            "emails",
            "active",
            "entitlements",
            "federationId",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let caps = TargetCapabilities {
            user_attributes: Some(declared),
            federation_id_path: Some(
                "urn:salesforce:schemas:extension:1.0:User:federationIdentifier".into(),
            ),
            ..TargetCapabilities::default()
        };
        let lines = discovery_lines(&caps, &policy);
        assert_eq!(
            lines[0].1,
            "mapped but not declared by the target, so they will not be sent: title, department"
        );
        assert!(lines[0].2);
        assert_eq!(
            lines[1].1,
            "Federation ID at urn:salesforce:schemas:extension:1.0:User:federationIdentifier"
        );
        let none = TargetCapabilities::default();
        let lines = discovery_lines(&none, &policy);
        assert!(lines[0].1.contains("every mapped attribute is sent"));
        assert!(
            lines[1]
                .1
                .starts_with("userName (no Federation ID attribute declared")
        );
        assert!(lines[1].1.contains("federation_id = \"<path>\""));
    }
}
