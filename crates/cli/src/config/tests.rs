use super::*;
use scimsync_core::budget::ApiBudget;
use scimsync_core::policy::{NameSplit, SourceAttribute};
use scimsync_scim::FederationIdPlacement;

const GOOD: &str = r#"
[store]
url = "sqlite://state.db"

[[connections]]
name = "salesforce"
schedule = "0 */15 * * * *"

[connections.source]
kind = "duo"
api_host = "api-12345678.duosecurity.com"
integration_key = "DIXXXXXXXXXXXXXXXXXX"
secret_key_env = "DUO_SKEY"

[connections.target]
kind = "salesforce"
base_url = "https://acme.my.salesforce.com/services/scim/v2"
token_url = "https://acme.my.salesforce.com/services/oauth2/token"
client_id = "3MVG9"
client_secret_env = "SF_SECRET"

[connections.scope]
groups = ["Sales", "Support"]

[connections.mapping]
nickName = "alias1"
department = "custom.department"

[connections.governance.baseline]
profile = "Standard User"

[[connections.governance.group_rules]]
groups = ["Sales"]
priority = 1
profile = "Standard User"
permission_sets = ["Sales Cloud"]
"#;

fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn a_good_file_loads_with_secrets_from_the_environment() {
    let s = parse(
        GOOD,
        Path::new("/etc/scimsync.toml"),
        &env(&[("DUO_SKEY", "s3cr3t-duo"), ("SF_SECRET", "s3cr3t-sf")]),
    )
    .unwrap();
    assert_eq!(
        s.store_url, "sqlite:///etc/state.db",
        "relative to the configuration's folder"
    );
    let c = &s.connections[0];
    assert_eq!(c.name, "salesforce");
    assert_eq!(c.policy.mapping.nick_name, Some(SourceAttribute::Alias(1)));
    assert!(
        matches!(&c.source, SourceSettings::Duo(d) if d.base_url.as_str() == "https://api-12345678.duosecurity.com/")
    );
    let debug = format!("{s:?}");
    assert!(
        !debug.contains("s3cr3t"),
        "no secret in Debug output: {debug}"
    );
    assert!(s.inline_secrets.is_empty());
}

#[test]
fn federation_id_placement_defaults_to_auto_and_refuses_matching_keys() {
    let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
    let s = parse(GOOD, Path::new("c.toml"), &vars).unwrap();
    assert_eq!(
        s.connections[0].target.federation_id,
        FederationIdPlacement::Auto
    );
    let with = |value: &str| {
        let text = GOOD.replace(
            "client_secret_env = \"SF_SECRET\"",
            &format!("client_secret_env = \"SF_SECRET\"\nfederation_id = \"{value}\""),
        );
        parse(&text, Path::new("c.toml"), &vars)
    };
    let path = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";
    assert_eq!(
        with(path).unwrap().connections[0].target.federation_id,
        FederationIdPlacement::Path(path.into())
    );
    assert_eq!(
        with("off").unwrap().connections[0].target.federation_id,
        FederationIdPlacement::Off
    );
    for refused in ["externalId", "userName", "emails[type eq work]"] {
        let err = with(refused).unwrap_err().to_string();
        assert!(
            err.contains("connections[0].target.federation_id"),
            "{refused}: {err}"
        );
    }
    let err = with("externalId").unwrap_err().to_string();
    assert!(err.contains("matches accounts on"), "{err}");
}

#[test]
fn environment_overrides_the_store_and_listener() {
    let s = parse(
        GOOD,
        Path::new("c.toml"),
        &env(&[
            ("DUO_SKEY", "a"),
            ("SF_SECRET", "b"),
            ("SCIMSYNC_STORE_URL", "postgres://db/x"),
            ("SCIMSYNC_LISTEN", "127.0.0.1:9999"),
        ]),
    )
    .unwrap();
    assert_eq!(s.store_url, "postgres://db/x");
    assert_eq!(s.listen.port(), 9999);
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let text = GOOD
        .replace(
            "nickName = \"alias1\"",
            "nickName = \"alias1\"\nlocale = \"custom.locale\"",
        )
        .replace("profile = \"Standard User\"\n\n[[", "\n[[")
        .replace("priority = 1", "priority = 1\ncolour = \"red\"")
        .replace(
            "token_url = \"https://acme.my.salesforce.com/services/oauth2/token\"",
            "token_url = \"https://login.salesforce.com/services/oauth2/token\"",
        );
    let err = parse(&text, Path::new("c.toml"), &env(&[("DUO_SKEY", "a")])).unwrap_err();
    let ConfigError::Invalid { problems, .. } = &err else {
        panic!("{err}");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "connections[0].mapping.locale",
        "connections[0].governance.group_rules[0].colour",
        "connections[0].target.token_url",
        "connections[0].target.client_secret_env",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("connections[0].governance.baseline")),
        "{paths:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("Salesforce does not provision locale"),
        "{text}"
    );
    assert!(text.contains("SF_SECRET is not set"), "{text}");
}

#[test]
fn the_name_split_rule_parses_and_a_bad_one_is_reported_with_its_path() {
    let env = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
    let s = parse(GOOD, Path::new("c.toml"), &env).unwrap();
    assert_eq!(
        s.connections[0].policy.mapping.name_split,
        NameSplit::LastWord,
        "the default"
    );
    for (text, want) in [
        ("first_word", NameSplit::FirstWord),
        ("none", NameSplit::None),
        ("last_word", NameSplit::LastWord),
    ] {
        let file = GOOD.replace(
            "nickName = \"alias1\"",
            &format!("nickName = \"alias1\"\nname_split = \"{text}\""),
        );
        let s = parse(&file, Path::new("c.toml"), &env).unwrap();
        let mapping = &s.connections[0].policy.mapping;
        assert_eq!(mapping.name_split, want, "{text}");
        assert_eq!(mapping.nick_name, Some(SourceAttribute::Alias(1)));
    }
    let file = GOOD.replace(
        "nickName = \"alias1\"",
        "nickName = \"alias1\"\nname_split = \"surname\"",
    );
    let err = parse(&file, Path::new("c.toml"), &env).unwrap_err();
    let ConfigError::Invalid { problems, .. } = &err else {
        panic!("{err}");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["connections[0].mapping.name_split"]);
    assert!(
        problems[0]
            .message
            .contains("\"surname\" is not a name rule")
            && problems[0].message.contains("\"first_word\""),
        "{}",
        problems[0].message
    );
}

#[test]
fn plain_http_is_refused_except_on_loopback() {
    let text = GOOD.replace(
        "api_host = \"api-12345678.duosecurity.com\"",
        "base_url = \"http://duo.example.com\"",
    );
    let err = parse(
        &text,
        Path::new("c.toml"),
        &env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("connections[0].source.base_url"),
        "{err}"
    );
    let text = GOOD.replace(
        "api_host = \"api-12345678.duosecurity.com\"",
        "base_url = \"http://127.0.0.1:8443\"",
    );
    assert!(
        parse(
            &text,
            Path::new("c.toml"),
            &env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")])
        )
        .is_ok()
    );
}

#[test]
fn an_inline_secret_in_a_world_readable_file_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let text = GOOD.replace(
        "secret_key_env = \"DUO_SKEY\"",
        "secret_key = \"inline-secret\"",
    );
    std::fs::write(&path, &text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = load(&path, &env(&[("SF_SECRET", "b")])).unwrap();
    let warning = inline_secret_warning(&s).unwrap();
    assert!(
        warning.contains("connections[0].source.secret_key") && !warning.contains("inline-secret"),
        "{warning}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(inline_secret_warning(&s).is_none());
}

#[test]
fn out_of_range_numbers_are_problems_naming_the_key_not_panics() {
    let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
    let text = GOOD.replace(
        "schedule = \"0 */15 * * * *\"",
        "schedule = \"0 */15 * * * *\"\nmax_concurrency = 9223372036854775807",
    );
    let err = parse(&text, Path::new("c.toml"), &vars)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("connections[0].max_concurrency: 9223372036854775807 is out of range"),
        "{err}"
    );
    let text = GOOD.replace(
        "client_secret_env = \"SF_SECRET\"",
        "client_secret_env = \"SF_SECRET\"\nmax_concurrency = 0\nmember_batch_size = 18446744073709551615",
    );
    let err = parse(&text, Path::new("c.toml"), &vars)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("connections[0].target.max_concurrency"),
        "{err}"
    );
    assert!(
        err.contains("connections[0].target.member_batch_size"),
        "{err}"
    );
}

#[test]
fn the_daemon_token_comes_from_the_environment_or_a_file() {
    let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b"), ("TOK", "t0k3n")]);
    let s = parse(GOOD, Path::new("c.toml"), &vars).unwrap();
    assert!(s.daemon_token.is_none());
    assert_eq!(s.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(s.header_timeout, DEFAULT_HEADER_TIMEOUT);
    let text = format!(
        "[daemon]\ntoken_env = \"TOK\"\nmax_connections = 10\nheader_timeout_seconds = 3\n{GOOD}"
    );
    let s = parse(&text, Path::new("c.toml"), &vars).unwrap();
    use secrecy::ExposeSecret as _;
    assert_eq!(s.daemon_token.as_ref().unwrap().expose_secret(), "t0k3n");
    assert_eq!(s.max_connections, 10);
    assert_eq!(s.header_timeout, Duration::from_secs(3));
    assert!(!format!("{s:?}").contains("t0k3n"));
    let text = format!("[daemon]\ntoken = \"inline\"\n{GOOD}");
    let s = parse(&text, Path::new("c.toml"), &vars).unwrap();
    assert_eq!(s.inline_secrets, ["daemon.token"]);
    let text = format!("[daemon]\ntoken_env = \"NOPE\"\n{GOOD}");
    let err = parse(&text, Path::new("c.toml"), &vars)
        .unwrap_err()
        .to_string();
    assert!(err.contains("daemon.token_env"), "{err}");
}

#[test]
fn a_secret_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("duo_secret");
    std::fs::write(&secret, "file-secret-value").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.path().join("c.toml");
    let text = GOOD.replace(
        "secret_key_env = \"DUO_SKEY\"",
        "secret_key_file = \"duo_secret\"",
    );
    std::fs::write(&path, &text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = load(&path, &env(&[("SF_SECRET", "b")])).unwrap();
    let warning = inline_secret_warning(&s).unwrap();
    assert!(
        warning.contains("connections[0].source.secret_key_file")
            && warning.contains("mode 644")
            && !warning.contains("file-secret-value"),
        "{warning}"
    );
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        inline_secret_warning(&s).is_none(),
        "the config file itself holds no secret"
    );
}

#[test]
fn schedules_are_parsed_as_the_scheduler_parses_them() {
    let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
    for bad in [
        "0 99 * * * *",
        "0 */15 * * * * * *",
        "every day",
        "0 0 25 * * *",
        "99 * * * *",
    ] {
        let text = GOOD.replace("0 */15 * * * *", bad);
        let err = parse(&text, Path::new("c.toml"), &vars)
            .unwrap_err()
            .to_string();
        assert!(err.contains("connections[0].schedule"), "{bad}: {err}");
    }
    for good in [
        "0 */15 * * * *",
        "30 0 2 * * Mon-Fri",
        "*/15 * * * *",
        "0 2 * * Mon-Fri",
    ] {
        let text = GOOD.replace("0 */15 * * * *", good);
        assert!(parse(&text, Path::new("c.toml"), &vars).is_ok(), "{good}");
    }
}

#[test]
fn an_unknown_key_is_named_with_its_section_and_file_and_the_keys_there_listed() {
    let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
    let text = GOOD
        .replace("[store]", "[store]\nurll = \"x\"")
        .replace(
            "client_secret_env = \"SF_SECRET\"",
            "client_secret_env = \"SF_SECRET\"\nmax_concurency = 4",
        )
        .replace("[connections.scope]", "[connections.scope]\nsso = true");
    let err = parse(&text, Path::new("/etc/scimsync.toml"), &vars)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("configuration file /etc/scimsync.toml has 3 problem(s)"),
        "{err}"
    );
    assert!(
        err.contains("store.urll: unknown key; the keys here are: url, retention\n"),
        "{err}"
    );
    assert!(
        err.contains(
            "connections[0].target.max_concurency: unknown key; the keys here are: kind, base_url,"
        ) && err.contains(" max_concurrency,"),
        "{err}"
    );
    assert!(
        err.contains(
            "connections[0].scope.sso: unknown key; the keys here are: groups, sso_access, all, exclude_groups"
        ),
        "{err}"
    );
}

#[test]
fn the_api_budget_is_a_percentage_or_a_number_of_calls_and_a_bad_one_is_named() {
    let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
    let with = |budget: &str| {
        GOOD.replace(
            "client_secret_env = \"SF_SECRET\"",
            &format!("client_secret_env = \"SF_SECRET\"\napi_budget = {budget}"),
        )
    };
    let s = parse(GOOD, Path::new("c.toml"), &vars).unwrap();
    assert_eq!(s.connections[0].policy.api_budget, None);
    let s = parse(&with("\"25%\""), Path::new("c.toml"), &vars).unwrap();
    assert_eq!(
        s.connections[0].policy.api_budget,
        Some(ApiBudget::Percent(25.0))
    );
    let s = parse(&with("5000"), Path::new("c.toml"), &vars).unwrap();
    assert_eq!(
        s.connections[0].policy.api_budget,
        Some(ApiBudget::Calls(5000))
    );
    for bad in ["\"250%\"", "0", "\"some\""] {
        let err = parse(&with(bad), Path::new("c.toml"), &vars)
            .unwrap_err()
            .to_string();
        assert!(err.contains("connections[0].target.api_budget"), "{err}");
    }
}

#[test]
fn a_run_may_be_called_stuck_after_a_configured_time() {
    let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
    let s = parse(GOOD, Path::new("c.toml"), &vars).unwrap();
    assert_eq!(s.stuck_after, None, "by default, from the schedule");
    let text = format!("[daemon]\nstuck_after_seconds = 5400\n{GOOD}");
    let s = parse(&text, Path::new("c.toml"), &vars).unwrap();
    assert_eq!(s.stuck_after, Some(Duration::from_secs(5_400)));
    let text = format!("[daemon]\nstuck_after_seconds = 0\n{GOOD}");
    let err = parse(&text, Path::new("c.toml"), &vars)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("daemon.stuck_after_seconds: 0 is out of range"),
        "{err}"
    );
}

#[test]
fn full_every_is_a_duration_of_a_minute_or_more_and_never_off() {
    let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
    let with = |value: &str| {
        GOOD.replace(
            "schedule = \"0 */15 * * * *\"",
            &format!("schedule = \"0 */15 * * * *\"\nfull_every = \"{value}\""),
        )
    };
    let s = parse(GOOD, Path::new("c.toml"), &vars).unwrap();
    assert_eq!(
        s.connections[0].policy.full_every,
        scimsync_core::policy::DEFAULT_FULL_EVERY
    );
    let s = parse(&with("7d"), Path::new("c.toml"), &vars).unwrap();
    assert_eq!(
        s.connections[0].policy.full_every,
        std::time::Duration::from_secs(7 * 86_400)
    );
    for (bad, says) in [
        ("off", "not accepted"),
        ("30s", "too short"),
        ("daily", "duration"),
    ] {
        let err = parse(&with(bad), Path::new("c.toml"), &vars)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("connections[0].full_every") && err.contains(says),
            "{bad}: {err}"
        );
    }
}
