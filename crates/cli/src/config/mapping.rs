//! The `[connections.mapping]` section: which source attribute fills each target attribute,
//! with the name rule and the userName suffix.

use super::validate::Validator;
use scimsync_core::mapping::parse_target_attribute;
use scimsync_core::policy::{Mapping, NameSplit, SourceAttribute, TargetKind};
use std::collections::BTreeMap;

impl Validator<'_> {
    pub(super) fn mapping(
        &mut self,
        mapping: &BTreeMap<String, String>,
        kind: TargetKind,
        at: &str,
    ) -> Mapping {
        let mut map = Mapping::default();
        for (target_attr, source_attr) in mapping {
            let path = format!("{at}.mapping.{target_attr}");
            if target_attr.eq_ignore_ascii_case("name_split") {
                match NameSplit::parse(source_attr) {
                    Some(rule) => map.name_split = rule,
                    None => self.problem(
                        &path,
                        format!(
                            "{source_attr:?} is not a name rule; use \"last_word\" (the default), \"first_word\" or \"none\""
                        ),
                    ),
                }
                continue;
            }
            if target_attr.eq_ignore_ascii_case("user_name_suffix") {
                let suffix = source_attr.trim();
                if suffix.is_empty() || suffix.contains(['@', ' ']) {
                    self.problem(
                        &path,
                        format!(
                            "{source_attr:?} is not a userName suffix; use text without spaces or '@' that is appended to every userName, such as \".acme\""
                        ),
                    );
                } else {
                    map.user_name_suffix = Some(suffix.to_owned());
                }
                continue;
            }
            let Some(source) = SourceAttribute::parse(source_attr) else {
                self.problem(
                    &path,
                    format!(
                        "{source_attr:?} is not a source attribute; use username, email, first_name, last_name, display_name, alias1..alias8, custom.<name> or phone"
                    ),
                );
                continue;
            };
            if target_attr.eq_ignore_ascii_case("userName") {
                map.user_name = source;
                continue;
            }
            if target_attr.eq_ignore_ascii_case("ssoIdentifier")
                || target_attr.eq_ignore_ascii_case("federationId")
            {
                map.sso_identifier = source;
                continue;
            }
            match parse_target_attribute(target_attr, kind) {
                Ok(attr) => map.set(attr, source),
                Err(message) => self.problem(&path, message),
            }
        }
        map
    }
}
