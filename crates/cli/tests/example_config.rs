//! `config/example.toml` is a valid configuration.
#![allow(clippy::unwrap_used)]

use scimsync::config::{SourceSettings, TargetAuth, parse};
use scimsync_core::policy::{NameSplit, Scope, SourceAttribute};
use std::path::Path;

#[test]
fn the_example_configuration_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |k: &str| match k {
        "DUO_SECRET_KEY" | "SALESFORCE_CLIENT_SECRET" => Some("x".to_owned()),
        _ => None,
    };
    let settings = parse(&text, &path, &env).unwrap();
    assert_eq!(settings.connections.len(), 1);
    let c = &settings.connections[0];
    assert_eq!(c.name, "salesforce");
    assert!(
        matches!(&c.source, SourceSettings::Duo(d) if d.sig_version == 5 && d.page_size == 300)
    );
    assert!(matches!(
        &c.target.auth,
        TargetAuth::ClientCredentials { basic: false, .. }
    ));
    assert!(matches!(&c.policy.scope, Scope::Groups(g) if g.len() == 4));
    assert_eq!(c.policy.mapping.nick_name, Some(SourceAttribute::Alias(1)));
    assert_eq!(c.policy.mapping.name_split, NameSplit::LastWord);
    assert_eq!(c.policy.governance.group_rules.len(), 2);
    assert_eq!(c.policy.safety.max_deactivations, Some(50));
    assert_eq!(
        settings.retention,
        Some(std::time::Duration::from_secs(90 * 86_400))
    );
}

#[test]
fn the_compose_configuration_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/compose.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |k: &str| match k {
        "DUO_SECRET_KEY" | "SF_CLIENT_SECRET" | "SCIMSYNC_DAEMON_TOKEN" => Some("x".to_owned()),
        _ => None,
    };
    let settings = parse(&text, &path, &env).unwrap();
    assert!(
        settings.daemon_token.is_some(),
        "the compose daemon listens beyond loopback: it needs a token"
    );
    assert!(settings.store_url.starts_with("postgres://"));
    assert_eq!(settings.listen.port(), 8080);
    assert_eq!(
        settings.connections[0].policy.governance.group_rules.len(),
        3
    );
}

#[test]
fn the_commented_out_second_connection_parses_when_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, tail) = text.split_at(text.find("# A second connection").unwrap());
    let uncommented: String = tail
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| l.split("   #").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let env = |k: &str| match k {
        "DUO_SECRET_KEY" | "SALESFORCE_CLIENT_SECRET" | "WIKI_SCIM_TOKEN" => Some("x".to_owned()),
        _ => None,
    };
    let settings = parse(&format!("{head}{uncommented}\n"), &path, &env).unwrap();
    assert_eq!(settings.connections.len(), 2);
    let wiki = &settings.connections[1];
    assert_eq!(wiki.name, "wiki");
    assert!(matches!(&wiki.source, SourceSettings::File { .. }));
    assert!(matches!(&wiki.target.auth, TargetAuth::Bearer(_)));
}
