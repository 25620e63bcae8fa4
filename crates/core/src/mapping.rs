//! Attribute mapping: reading source attributes from a [`DirectoryUser`] and evaluating a
//! [`Mapping`] into the attributes the target should hold.
//!
//! Empty (or whitespace-only) source values count as absent: an empty mapped nickName is not
//! sent (Salesforce invents one), an empty mapped title clears the target's.

use crate::policy::{Mapping, SourceAttribute, TargetKind};
use crate::source::DirectoryUser;

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
                .map(String::as_str),
            Self::Custom(name) => user.custom.get(name).map(String::as_str),
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

    /// Evaluates the mapping on one user.
    pub fn evaluate<'a>(&self, user: &'a DirectoryUser) -> MappedUser<'a> {
        let opt = |attr: &Option<SourceAttribute>| attr.as_ref().and_then(|a| a.read(user));
        MappedUser {
            user_name: self.user_name.read(user),
            email: SourceAttribute::Email.read(user),
            given_name: SourceAttribute::FirstName.read(user),
            family_name: SourceAttribute::LastName.read(user),
            display_name: SourceAttribute::DisplayName.read(user),
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
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
    {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
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
    fn checks_email_addresses() {
        for good in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "", "ada", "@b.co", "a@b", "a@@b.co", "a b@c.co", "a@b..co", ".a@b.co", "a@-b.co",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
