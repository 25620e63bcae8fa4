//! The configuration file as written: serde structs of the TOML, every key optional, so that
//! validation (in [`super::validate`]) can name each missing or bad key rather than stop at the
//! first. Unknown keys are found by serde: [`read`] returns the path of every key no struct
//! reads, and [`fields_of`] the keys a struct does read (for the message that lists them).

use serde::Deserialize;
use serde::de::{self, Visitor};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawFile {
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub connections: Vec<RawConnection>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawStore {
    pub url: Option<String>,
    pub retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawDaemon {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    pub max_connections: Option<u64>,
    pub header_timeout_seconds: Option<u64>,
    pub stuck_after_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawConnection {
    pub name: Option<String>,
    pub schedule: Option<String>,
    pub max_concurrency: Option<u64>,
    pub full_every: Option<String>,
    pub source: Option<RawSource>,
    pub target: Option<RawTarget>,
    #[serde(default)]
    pub scope: RawScope,
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
    #[serde(default)]
    pub governance: RawGovernance,
    #[serde(default)]
    pub safety: RawSafety,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawSource {
    pub kind: Option<String>,
    pub api_host: Option<String>,
    pub base_url: Option<String>,
    pub integration_key: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_env: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub sig_version: Option<u8>,
    pub sso_integration_key: Option<String>,
    pub page_size: Option<u32>,
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawTarget {
    pub kind: Option<String>,
    pub base_url: Option<String>,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub bearer_token_env: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub client_auth: Option<String>,
    pub requests_per_second: Option<u64>,
    pub max_concurrency: Option<u64>,
    pub timeout_seconds: Option<u64>,
    pub member_batch_size: Option<u64>,
    pub federation_id: Option<String>,
    pub api_budget: Option<RawBudget>,
}

/// `api_budget = "25%"`, `"5000"` or `5000`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawBudget {
    Calls(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawScope {
    pub groups: Option<Vec<String>>,
    pub sso_access: Option<bool>,
    pub all: Option<bool>,
    #[serde(default)]
    pub exclude_groups: bool,
}

/// The baseline: what every account in scope gets.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawRule {
    pub profile: Option<String>,
    #[serde(default)]
    pub permission_sets: Vec<String>,
    pub role: Option<String>,
}

/// A group rule: a rule's keys beside the groups it applies to and its priority (not
/// flattened: serde cannot tell a flattened struct's unknown keys).
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawGroupRule {
    #[serde(default)]
    pub groups: Vec<String>,
    pub priority: Option<u32>,
    pub profile: Option<String>,
    #[serde(default)]
    pub permission_sets: Vec<String>,
    pub role: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawGovernance {
    pub baseline: Option<RawRule>,
    #[serde(default)]
    pub group_rules: Vec<RawGroupRule>,
    #[serde(default)]
    pub authoritative_permission_sets: bool,
    #[serde(default)]
    pub profiles_without_groups: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawSafety {
    pub max_deactivations: Option<u32>,
    pub max_deactivation_percent: Option<f64>,
}

/// Parses the TOML text into the raw structs; with it, the path of every key that no struct
/// reads (`connections[0].governance.group_rules[2].colour`).
pub(super) fn read<T: for<'de> Deserialize<'de>>(
    text: &str,
) -> Result<(T, Vec<String>), toml::de::Error> {
    let mut unknown = Vec::new();
    let raw = serde_ignored::deserialize(toml::Deserializer::parse(text)?, |path| {
        unknown.push(key_path(&path));
    })?;
    Ok((raw, unknown))
}

/// A key's path as the messages write it: tables joined by `.`, array items as `[i]`.
fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => match key_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}

/// The keys a raw struct reads, as serde's derive names them.
pub(super) fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that only notes the field names a struct asks for, then gives up.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only the field names are read"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_found_with_their_paths_and_known_keys_listed() {
        let (raw, mut unknown) = read::<RawFile>(
            "colour = 1\n[store]\nurl = \"x\"\nsize = 2\n[[connections]]\nname = \"a\"\n\
             [[connections.governance.group_rules]]\npriority = 1\nshade = \"red\"\n",
        )
        .unwrap();
        assert_eq!(raw.store.url.as_deref(), Some("x"));
        unknown.sort();
        assert_eq!(
            unknown,
            [
                "colour",
                "connections[0].governance.group_rules[0].shade",
                "store.size",
            ]
        );
        assert_eq!(
            fields_of::<RawGroupRule>(),
            ["groups", "priority", "profile", "permission_sets", "role"]
        );
        assert_eq!(fields_of::<RawStore>(), ["url", "retention"]);
    }
}
