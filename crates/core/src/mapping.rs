//! Attribute mapping: reading source attributes from a [`DirectoryUser`] and evaluating a
//! [`Mapping`] into the attributes the target should hold.
//!
//! Empty (or whitespace-only) source values count as absent: an empty mapped nickName is not
//! sent (Salesforce invents one), an empty mapped title clears the target's.
//!
//! # Names derived from the full name
//!
//! Salesforce requires a last name, and a Duo user often has only a full name (`realname`):
//! mononyms, service accounts. When the source has no last name, the family name (and a
//! missing given name) is derived by the rule [`NameSplit`] (`name_split` in a connection's
//! mapping) from the first of these that is not empty:
//!
//! 1. the full name (display name; Duo's `realname`);
//! 2. the local part of the username (before the first `@`; the whole username without one).
//!
//! Words are separated by whitespace; the text is trimmed, and the given name keeps the
//! spacing between its words as the source wrote it.
//!
//! | `name_split` | full name | given name | family name |
//! | --- | --- | --- | --- |
//! | `last_word` (default) | `Ada Lovelace` | `Ada` | `Lovelace` |
//! | `last_word` | `Jean-Luc Picard` | `Jean-Luc` | `Picard` |
//! | `last_word` | `Mary Ann Evans` | `Mary Ann` | `Evans` |
//! | `last_word` | `Cher` | — | `Cher` |
//! | `first_word` | `Tanaka Hanako` | `Hanako` | `Tanaka` |
//! | `first_word` | `Cher` | — | `Cher` |
//! | `none` | anything | the first name | the last name |
//!
//! Derivation only fills what is missing: a source last name is never replaced (nothing is
//! derived then), and a source first name is kept as the given name, whatever the full name
//! says. The derived names depend on the source values alone, so they are the same on every
//! run and are compared with the account's like any source value: set when they differ, never
//! cleared. [`MappedUser::derived_names`] says when and from what they were derived. When no
//! family name results (no last name, and nothing to derive one from, or `name_split = "none"`),
//! a user is not created on Salesforce: the plan rejects it with the field `name.familyName`.

use crate::policy::{Mapping, NameSplit, SourceAttribute, TargetKind};
use crate::source::{DirectoryUser, SourceSnapshot};

impl SourceAttribute {
    /// The value of this attribute for `user`, `None` when absent or empty.
    ///
    /// Aliases are 1-based (`Alias(1)` is Duo's `alias1`), custom attributes are read by exact
    /// name, and `Phone` is the user's first phone whatever its type.
    pub fn read<'a>(&self, user: &'a DirectoryUser) -> Option<&'a str> {
        let value = match self {
            Self::Username => Some(user.username.as_str()),
            Self::Email => user.email.as_deref(),
            Self::FirstName => user.first_name.as_deref(),
            Self::LastName => user.last_name.as_deref(),
            Self::DisplayName => user.display_name.as_deref(),
            Self::Alias(n) => usize::from(*n)
                .checked_sub(1)
                .and_then(|i| user.aliases.get(i))
                .map(|a| a.as_str()),
            Self::Custom(name) => user.custom.get(name),
            Self::Phone => user.phones.first().map(|p| p.number.as_str()),
        };
        value.map(str::trim).filter(|v| !v.is_empty())
    }
}

/// An optional target attribute that configuration may map to a source attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetAttribute {
    NickName,
    Title,
    /// `phoneNumbers[type eq "work"]`: the one phone sent.
    WorkPhone,
    EmployeeNumber,
    Department,
    Division,
    Organization,
    CostCenter,
    /// The manager: the source attribute must yield the manager's source user id.
    Manager,
}

impl TargetAttribute {
    /// Every mappable attribute with its configuration spelling.
    pub const ALL: [(TargetAttribute, &'static str); 9] = [
        (Self::NickName, "nickName"),
        (Self::Title, "title"),
        (Self::WorkPhone, "workPhone"),
        (Self::EmployeeNumber, "employeeNumber"),
        (Self::Department, "department"),
        (Self::Division, "division"),
        (Self::Organization, "organization"),
        (Self::CostCenter, "costCenter"),
        (Self::Manager, "manager"),
    ];

    /// The configuration spelling (`nickName`, `workPhone`, …).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("", |(_, n)| n)
    }
}

/// Attributes the target fills in itself and the engine never sends.
const NOT_PROVISIONED: [&str; 4] = [
    "preferredLanguage",
    "locale",
    "timezone",
    "emailEncodingKey",
];

/// Parses a target attribute name from configuration.
///
/// Accepts the names of [`TargetAttribute::ALL`] case-insensitively, `phoneNumbers[work]` for
/// `workPhone`, and the enterprise attributes with their schema prefix
/// (`urn:…:enterprise:2.0:User:department`). The error is a message for the operator.
pub fn parse_target_attribute(name: &str, kind: TargetKind) -> Result<TargetAttribute, String> {
    let trimmed = name.trim();
    let bare = trimmed
        .strip_prefix("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:")
        .unwrap_or(trimmed);
    let lower = bare.to_ascii_lowercase();
    let found = match lower.as_str() {
        "phonenumbers[work]" | "phonenumbers[type eq \"work\"]" | "phone" | "phonenumber" => {
            Some(TargetAttribute::WorkPhone)
        }
        "manager.value" => Some(TargetAttribute::Manager),
        _ => TargetAttribute::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(bare))
            .map(|(a, _)| *a),
    };
    if let Some(attribute) = found {
        return Ok(attribute);
    }
    if kind == TargetKind::Salesforce
        && let Some(known) = NOT_PROVISIONED
            .iter()
            .find(|n| n.eq_ignore_ascii_case(bare))
    {
        return Err(format!(
            "Salesforce does not provision {known}: it sets its own default and ignores the value sent; remove this mapping"
        ));
    }
    let accepted: Vec<&str> = TargetAttribute::ALL.iter().map(|(_, n)| *n).collect();
    Err(format!(
        "unknown target attribute {name:?}; the attributes that can be mapped are: {}",
        accepted.join(", ")
    ))
}

impl Mapping {
    /// Maps `attribute` to `source` (what the configuration parser calls for each entry).
    pub fn set(&mut self, attribute: TargetAttribute, source: SourceAttribute) {
        let slot = match attribute {
            TargetAttribute::NickName => &mut self.nick_name,
            TargetAttribute::Title => &mut self.title,
            TargetAttribute::WorkPhone => &mut self.work_phone,
            TargetAttribute::EmployeeNumber => &mut self.employee_number,
            TargetAttribute::Department => &mut self.department,
            TargetAttribute::Division => &mut self.division,
            TargetAttribute::Organization => &mut self.organization,
            TargetAttribute::CostCenter => &mut self.cost_center,
            TargetAttribute::Manager => &mut self.manager,
        };
        *slot = Some(source);
    }

    /// Every source attribute the mapping reads.
    pub fn reads(&self) -> impl Iterator<Item = &SourceAttribute> {
        [&self.user_name, &self.sso_identifier].into_iter().chain(
            [
                &self.nick_name,
                &self.title,
                &self.work_phone,
                &self.employee_number,
                &self.department,
                &self.division,
                &self.organization,
                &self.cost_center,
                &self.manager,
            ]
            .into_iter()
            .flatten(),
        )
    }

    /// Drops from `snapshot` what no attribute of the mapping reads: phones unless `phone` is
    /// mapped, aliases after the last one mapped, custom attributes not mapped. A run holds the
    /// source for its whole length, and a directory's phones and custom attributes are most of
    /// a user's record (at 100,000 Duo users, a third of a no-op run's memory). The username,
    /// email, names, status and groups are always kept: scope, matching, name derivation and the
    /// activity log's identifiers read them. Evaluating the mapping gives the same values
    /// before and after.
    pub fn keep_only_what_it_reads(&self, snapshot: &mut SourceSnapshot) {
        let mut phone = false;
        let mut aliases = 0usize;
        let mut custom: Vec<&str> = Vec::new();
        for attribute in self.reads() {
            match attribute {
                SourceAttribute::Phone => phone = true,
                SourceAttribute::Alias(n) => aliases = aliases.max(usize::from(*n)),
                SourceAttribute::Custom(name) => custom.push(name),
                _ => {}
            }
        }
        for user in &mut snapshot.users {
            if phone {
                user.phones.truncate(1);
            } else {
                user.phones = Vec::new();
            }
            user.phones.shrink_to_fit();
            user.aliases.truncate(aliases);
            user.aliases.shrink_to_fit();
            user.custom.retain(|name| custom.contains(&name));
        }
    }

    /// Evaluates the mapping on one user, deriving a missing family name by
    /// [`Mapping::name_split`] (see the [module documentation](self)).
    pub fn evaluate<'a>(&self, user: &'a DirectoryUser) -> MappedUser<'a> {
        let opt = |attr: &Option<SourceAttribute>| attr.as_ref().and_then(|a| a.read(user));
        let mut given_name = SourceAttribute::FirstName.read(user);
        let mut family_name = SourceAttribute::LastName.read(user);
        let display_name = SourceAttribute::DisplayName.read(user);
        let mut derived_names = None;
        if family_name.is_none()
            && let Some((origin, text)) = name_origin(display_name, &user.username)
            && let Some((given, family)) = self.name_split.split(text)
        {
            family_name = Some(family);
            let fill_given = given_name.is_none() && given.is_some();
            if fill_given {
                given_name = given;
            }
            derived_names = Some(DerivedNames {
                from: origin,
                text,
                rule: self.name_split,
                given_name: fill_given,
            });
        }
        MappedUser {
            user_name: self.user_name.read(user),
            email: SourceAttribute::Email.read(user),
            given_name,
            family_name,
            display_name,
            derived_names,
            nick_name: opt(&self.nick_name),
            title: opt(&self.title),
            work_phone: opt(&self.work_phone),
            federation_id: self.sso_identifier.read(user),
            employee_number: opt(&self.employee_number),
            department: opt(&self.department),
            division: opt(&self.division),
            organization: opt(&self.organization),
            cost_center: opt(&self.cost_center),
            manager_source_id: opt(&self.manager),
        }
    }
}

/// The attributes a mapping yields for one user, borrowed from it. `None` is absent or empty;
/// whether an optional attribute is mapped at all is a question for the [`Mapping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MappedUser<'a> {
    pub user_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub given_name: Option<&'a str>,
    pub family_name: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub nick_name: Option<&'a str>,
    pub title: Option<&'a str>,
    pub work_phone: Option<&'a str>,
    pub federation_id: Option<&'a str>,
    pub employee_number: Option<&'a str>,
    pub department: Option<&'a str>,
    pub division: Option<&'a str>,
    pub organization: Option<&'a str>,
    pub cost_center: Option<&'a str>,
    /// The manager's source user id; the planner turns it into a target id.
    pub manager_source_id: Option<&'a str>,
    /// Set when [`Self::family_name`] (and perhaps [`Self::given_name`]) was derived from the
    /// full name or the username, because the source has no last name.
    pub derived_names: Option<DerivedNames<'a>>,
}

impl MappedUser<'_> {
    /// When the names were derived, says so for an explanation: `no last name in the source:
    /// name.familyName "Lovelace" and name.givenName "Ada" derived from the full name (realname)
    /// "Ada Lovelace" by name_split = "last_word"`.
    pub fn derivation(&self) -> Option<String> {
        let d = self.derived_names?;
        let family = self.family_name.unwrap_or_default();
        let given = match self.given_name {
            Some(given) if d.given_name => format!(" and name.givenName {given:?}"),
            _ => String::new(),
        };
        Some(format!(
            "no last name in the source: name.familyName {family:?}{given} derived from the {} {:?} by name_split = {:?}",
            d.from.describe(),
            d.text,
            d.rule.name()
        ))
    }
}

/// Where derived names were taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameOrigin {
    /// The full name: the display name (Duo's `realname`).
    FullName,
    /// The local part of the username (Duo's `username`, before any `@`).
    Username,
}

impl NameOrigin {
    /// How explanations name the origin: `full name (realname)`, `username`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::FullName => "full name (realname)",
            Self::Username => "username",
        }
    }
}

/// How a user's names were derived (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivedNames<'a> {
    /// What the text was taken from.
    pub from: NameOrigin,
    /// The text that was split (trimmed; for the username, its local part).
    pub text: &'a str,
    /// The rule that split it.
    pub rule: NameSplit,
    /// Whether the given name was derived too; false when the source has a first name (kept)
    /// or the text is one word (no given name).
    pub given_name: bool,
}

/// The text names are derived from: the full name, else the username's local part; `None`
/// when both are empty.
fn name_origin<'a>(full_name: Option<&'a str>, username: &'a str) -> Option<(NameOrigin, &'a str)> {
    if let Some(full) = full_name.map(str::trim).filter(|f| !f.is_empty()) {
        return Some((NameOrigin::FullName, full));
    }
    let username = username.trim();
    let local = username.split('@').next().unwrap_or(username).trim();
    (!local.is_empty()).then_some((NameOrigin::Username, local))
}

impl NameSplit {
    /// Splits a full name into (given name, family name) by this rule: `None` for
    /// [`NameSplit::None`] and for empty text; one word is a family name with no given name.
    /// The parts are slices of `full`, trimmed; a given name of several words keeps the
    /// spacing between them.
    pub fn split(self, full: &str) -> Option<(Option<&str>, &str)> {
        let text = full.trim();
        if text.is_empty() {
            return None;
        }
        // `text` is trimmed, so both sides of an inner whitespace hold a word.
        match self {
            Self::None => None,
            Self::LastWord => Some(match text.rfind(char::is_whitespace) {
                Some(i) => (Some(text[..i].trim_end()), text[i..].trim_start()),
                None => (None, text),
            }),
            Self::FirstWord => Some(match text.find(char::is_whitespace) {
                Some(i) => (Some(text[i..].trim_start()), &text[..i]),
                None => (None, text),
            }),
        }
    }
}

/// Whether `text` looks like an email address: one `@`, a non-empty local part without
/// spaces, a domain with a dot, no empty labels, no spaces.
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') || text.len() > 254 {
        return false;
    }
    let refused =
        |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"');
    // ASCII (nearly every address) byte by byte: its whitespace and control characters are the
    // bytes up to the space, and DEL.
    let bad = if text.is_ascii() {
        text.bytes()
            .any(|b| b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b',' | b';' | b'"'))
    } else {
        text.chars().any(refused)
    };
    if bad {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    // At least two labels, none empty or starting or ending with '-' (without collecting
    // them: the planner checks two addresses per user).
    domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{DirectoryStatus, Phone, PhoneKind};

    fn user() -> DirectoryUser {
        DirectoryUser {
            id: "DU1".into(),
            username: "ada".into(),
            email: Some("ada@example.com".into()),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            display_name: None,
            status: DirectoryStatus::Active,
            phones: vec![
                Phone {
                    number: "+15550001".into(),
                    kind: PhoneKind::Mobile,
                    extension: None,
                },
                Phone {
                    number: "+15550002".into(),
                    kind: PhoneKind::Landline,
                    extension: None,
                },
            ],
            aliases: vec!["a1".into(), "  ".into()],
            custom: [("dept".to_owned(), "R&D".to_owned())].into(),
            groups: vec![],
        }
    }

    #[test]
    fn a_source_kept_to_what_the_mapping_reads_maps_the_same() {
        let mut rich = user();
        rich.aliases = vec!["a1".into(), "a2".into(), "a3".into()];
        rich.custom = [("dept", "R&D"), ("title", "Engineer"), ("badge", "42")].into();
        let snapshot = |u: &DirectoryUser| SourceSnapshot {
            users: vec![u.clone()],
            ..SourceSnapshot::default()
        };
        // Nothing optional mapped: phones, aliases and custom attributes all go; the names,
        // email and status stay.
        let plain = Mapping::default();
        let mut kept = snapshot(&rich);
        plain.keep_only_what_it_reads(&mut kept);
        let u = &kept.users[0];
        assert!(u.phones.is_empty() && u.aliases.is_empty() && u.custom.is_empty());
        assert_eq!(plain.evaluate(u), plain.evaluate(&rich));
        // A title from a custom attribute, the nickName from alias2, the phone: the first
        // phone, the first two aliases and that one attribute stay.
        let mut mapping = Mapping::default();
        mapping.set(
            TargetAttribute::Title,
            SourceAttribute::Custom("title".into()),
        );
        mapping.set(TargetAttribute::NickName, SourceAttribute::Alias(2));
        mapping.set(TargetAttribute::WorkPhone, SourceAttribute::Phone);
        let mut kept = snapshot(&rich);
        mapping.keep_only_what_it_reads(&mut kept);
        let u = &kept.users[0];
        assert_eq!(u.phones.len(), 1);
        assert_eq!(u.aliases, ["a1", "a2"]);
        assert_eq!(u.custom.iter().collect::<Vec<_>>(), [("title", "Engineer")]);
        let (before, after) = (mapping.evaluate(&rich), mapping.evaluate(u));
        assert_eq!(after, before);
        assert_eq!(
            (after.title, after.nick_name, after.work_phone),
            (Some("Engineer"), Some("a2"), Some("+15550001"))
        );
    }

    #[test]
    fn reads_source_attributes() {
        let u = user();
        let cases = [
            (SourceAttribute::Username, Some("ada")),
            (SourceAttribute::Email, Some("ada@example.com")),
            (SourceAttribute::DisplayName, None),
            (SourceAttribute::Alias(1), Some("a1")),
            (SourceAttribute::Alias(2), None),
            (SourceAttribute::Alias(3), None),
            (SourceAttribute::Alias(0), None),
            (SourceAttribute::Custom("dept".into()), Some("R&D")),
            (SourceAttribute::Custom("Dept".into()), None),
            (SourceAttribute::Phone, Some("+15550001")),
        ];
        for (attr, want) in cases {
            assert_eq!(attr.read(&u), want, "{attr:?}");
        }
    }

    #[test]
    fn parses_target_attributes() {
        let ok = [
            ("nickName", TargetAttribute::NickName),
            ("title", TargetAttribute::Title),
            ("phoneNumbers[work]", TargetAttribute::WorkPhone),
            ("workPhone", TargetAttribute::WorkPhone),
            ("employeeNumber", TargetAttribute::EmployeeNumber),
            ("department", TargetAttribute::Department),
            ("division", TargetAttribute::Division),
            ("organization", TargetAttribute::Organization),
            ("costCenter", TargetAttribute::CostCenter),
            ("manager", TargetAttribute::Manager),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
                TargetAttribute::CostCenter,
            ),
        ];
        for (name, want) in ok {
            assert_eq!(
                parse_target_attribute(name, TargetKind::Salesforce),
                Ok(want),
                "{name}"
            );
            assert!(!want.name().is_empty());
        }
        for name in [
            "preferredLanguage",
            "locale",
            "timezone",
            "emailEncodingKey",
        ] {
            let err = parse_target_attribute(name, TargetKind::Salesforce).unwrap_err();
            assert!(err.contains("Salesforce does not provision"), "{err}");
            assert!(err.contains(name), "{err}");
        }
        let err = parse_target_attribute("shoeSize", TargetKind::Generic).unwrap_err();
        assert!(
            err.contains("shoeSize") && err.contains("nickName, title, workPhone"),
            "{err}"
        );
    }

    #[test]
    fn evaluates_a_mapping() {
        let mut m = Mapping::default();
        m.set(
            TargetAttribute::Department,
            SourceAttribute::Custom("dept".into()),
        );
        m.set(TargetAttribute::NickName, SourceAttribute::Alias(2));
        let u = user();
        let mapped = m.evaluate(&u);
        assert_eq!(mapped.user_name, Some("ada@example.com"));
        assert_eq!(mapped.federation_id, Some("ada@example.com"));
        assert_eq!(mapped.department, Some("R&D"));
        assert_eq!(mapped.nick_name, None);
        assert_eq!(mapped.title, None);
    }

    #[test]
    fn derives_missing_names_from_the_full_name_then_the_username() {
        use NameOrigin::{FullName, Username};
        use NameSplit::{FirstWord, LastWord, None as NoSplit};
        type Row = (
            NameSplit,
            Option<&'static str>,       // first name
            Option<&'static str>,       // last name
            Option<&'static str>,       // full name (realname)
            &'static str,               // username
            Option<&'static str>,       // want given name
            Option<&'static str>,       // want family name
            Option<(NameOrigin, bool)>, // want derivation: origin, given name derived
        );
        let rows: [Row; 17] = [
            (
                LastWord,
                None,
                None,
                Some("Cher"),
                "cher",
                None,
                Some("Cher"),
                Some((FullName, false)),
            ),
            (
                LastWord,
                None,
                None,
                Some("Ada Lovelace"),
                "ada",
                Some("Ada"),
                Some("Lovelace"),
                Some((FullName, true)),
            ),
            (
                LastWord,
                None,
                None,
                Some("Jean-Luc Picard"),
                "jlp",
                Some("Jean-Luc"),
                Some("Picard"),
                Some((FullName, true)),
            ),
            (
                LastWord,
                None,
                None,
                Some("  Mary  Ann \t Evans  "),
                "m",
                Some("Mary  Ann"),
                Some("Evans"),
                Some((FullName, true)),
            ),
            (
                FirstWord,
                None,
                None,
                Some("Tanaka  Hanako"),
                "t",
                Some("Hanako"),
                Some("Tanaka"),
                Some((FullName, true)),
            ),
            (
                FirstWord,
                None,
                None,
                Some("Tanaka Hanako Mei"),
                "t",
                Some("Hanako Mei"),
                Some("Tanaka"),
                Some((FullName, true)),
            ),
            (
                FirstWord,
                None,
                None,
                Some("Cher"),
                "cher",
                None,
                Some("Cher"),
                Some((FullName, false)),
            ),
            (
                NoSplit,
                None,
                None,
                Some("Ada Lovelace"),
                "ada",
                None,
                None,
                None,
            ),
            (
                NoSplit,
                Some("Ada"),
                Some("Lovelace"),
                None,
                "ada",
                Some("Ada"),
                Some("Lovelace"),
                None,
            ),
            // A source last name is never replaced, and nothing is derived.
            (
                LastWord,
                None,
                Some("King"),
                Some("Ada Lovelace"),
                "ada",
                None,
                Some("King"),
                None,
            ),
            (
                FirstWord,
                Some("Ada"),
                Some("King"),
                Some("Lovelace Ada"),
                "ada",
                Some("Ada"),
                Some("King"),
                None,
            ),
            // A source first name is kept.
            (
                LastWord,
                Some("Augusta Ada"),
                None,
                Some("Ada Lovelace"),
                "ada",
                Some("Augusta Ada"),
                Some("Lovelace"),
                Some((FullName, false)),
            ),
            // Whitespace-only counts as empty.
            (
                LastWord,
                None,
                Some("  "),
                Some(" \t "),
                "",
                None,
                None,
                None,
            ),
            (LastWord, None, None, None, "", None, None, None),
            (LastWord, None, None, None, "@example.com", None, None, None),
            // The username's local part, when there is no full name.
            (
                LastWord,
                None,
                None,
                None,
                "svc-backup@x",
                None,
                Some("svc-backup"),
                Some((Username, false)),
            ),
            (
                FirstWord,
                None,
                None,
                Some(""),
                " svc-backup ",
                None,
                Some("svc-backup"),
                Some((Username, false)),
            ),
        ];
        for (n, (rule, first, last, full, username, given, family, derived)) in
            rows.into_iter().enumerate()
        {
            let mut u = user();
            u.first_name = first.map(Into::into);
            u.last_name = last.map(Into::into);
            u.display_name = full.map(Into::into);
            u.username = username.into();
            let m = Mapping {
                name_split: rule,
                ..Mapping::default()
            };
            let mapped = m.evaluate(&u);
            assert_eq!(
                (mapped.given_name, mapped.family_name),
                (given, family),
                "row {n}: {rule:?} {first:?} {last:?} {full:?} {username:?}"
            );
            let got = mapped.derived_names.map(|d| {
                assert_eq!(d.rule, rule, "row {n}");
                (d.from, d.given_name)
            });
            assert_eq!(got, derived, "row {n}");
            // The same input always gives the same names.
            assert_eq!(m.evaluate(&u.clone()), mapped, "row {n}");
        }
    }

    #[test]
    fn explains_derived_names() {
        let mut u = user();
        u.first_name = None;
        u.last_name = None;
        u.display_name = Some("Ada Lovelace".into());
        let m = Mapping::default();
        assert_eq!(
            m.evaluate(&u).derivation().as_deref(),
            Some(
                "no last name in the source: name.familyName \"Lovelace\" and name.givenName \"Ada\" \
                 derived from the full name (realname) \"Ada Lovelace\" by name_split = \"last_word\""
            )
        );
        u.display_name = None;
        u.username = "svc-backup@example.com".into();
        assert_eq!(
            m.evaluate(&u).derivation().as_deref(),
            Some(
                "no last name in the source: name.familyName \"svc-backup\" derived from the username \
                 \"svc-backup\" by name_split = \"last_word\""
            )
        );
        assert_eq!(m.evaluate(&user()).derivation(), None);
    }

    #[test]
    fn splits_names_by_rule() {
        let cases = [
            (NameSplit::LastWord, "Cher", Some((None, "Cher"))),
            (
                NameSplit::LastWord,
                "Ada Lovelace",
                Some((Some("Ada"), "Lovelace")),
            ),
            (
                NameSplit::LastWord,
                " Ada   Lovelace ",
                Some((Some("Ada"), "Lovelace")),
            ),
            (
                NameSplit::FirstWord,
                "Ada Lovelace",
                Some((Some("Lovelace"), "Ada")),
            ),
            (
                NameSplit::LastWord,
                "Zoë\u{a0}Ünal",
                Some((Some("Zoë"), "Ünal")),
            ),
            (NameSplit::LastWord, "   ", None),
            (NameSplit::FirstWord, "", None),
            (NameSplit::None, "Ada Lovelace", None),
        ];
        for (rule, text, want) in cases {
            assert_eq!(rule.split(text), want, "{rule:?} {text:?}");
        }
        for (rule, name) in NameSplit::ALL {
            assert_eq!(NameSplit::parse(name), Some(rule));
            assert_eq!(rule.name(), name);
        }
        assert_eq!(NameSplit::parse(" Last_Word "), Some(NameSplit::LastWord));
        assert_eq!(NameSplit::parse("last"), None);
        assert_eq!(NameSplit::default(), NameSplit::LastWord);
    }

    #[test]
    fn source_attributes_print_as_duo_names_that_parse_back() {
        for attr in [
            SourceAttribute::Username,
            SourceAttribute::Email,
            SourceAttribute::FirstName,
            SourceAttribute::LastName,
            SourceAttribute::DisplayName,
            SourceAttribute::Alias(3),
            SourceAttribute::Custom("title".into()),
            SourceAttribute::Phone,
        ] {
            assert_eq!(
                SourceAttribute::parse(&attr.to_string()),
                Some(attr.clone())
            );
        }
        assert_eq!(SourceAttribute::DisplayName.to_string(), "realname");
        assert_eq!(SourceAttribute::Alias(1).to_string(), "alias1");
    }

    #[test]
    fn checks_email_addresses() {
        for good in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "", "ada", "@b.co", "a@b", "a@@b.co", "a b@c.co", "a@b..co", ".a@b.co", "a@-b.co",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        // Whitespace and control characters, ASCII or not; other non-ASCII text is allowed.
        for bad in [
            "a\tb@c.co",
            "a\x7f@b.co",
            "a\u{a0}b@c.co",
            "a\u{2028}@b.co",
            "a\u{85}@b.co",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
        assert!(is_email("zoë@exämple.org"));
    }
}
