//! The policy of one connection: scope, attribute mapping, governance rules and safety limits.
//!
//! These are plain, typed values. The binary parses them from TOML; [`Policy::validate`]
//! reports every problem at once, each with its path.

use serde::{Deserialize, Serialize};

/// Which dialect of SCIM the target speaks, and so which of its rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Salesforce: a baseline rule is required, nickName/group names ≤ 40 characters, …
    #[default]
    Salesforce,
    /// Any RFC 7644 service.
    Generic,
}

/// A source group named in the configuration: matched against the group's id first, then its
/// name (case-insensitively).
pub type GroupSelector = String;

/// Which users and groups are provisioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "groups")]
pub enum Scope {
    /// The listed source groups and their members; users in none of them are not provisioned.
    Groups(Vec<GroupSelector>),
    /// "Use groups with SSO access": the groups the application's SSO access setting permits;
    /// when that setting is "all users", every group, and users in no group are not provisioned.
    SsoAccess,
    /// Every user of the directory and every group.
    All,
}

/// A source attribute that a mapping reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "attribute", content = "name")]
pub enum SourceAttribute {
    Username,
    Email,
    FirstName,
    LastName,
    DisplayName,
    /// `alias1`..`alias8` (1-based, as Duo names them).
    Alias(u8),
    /// A custom attribute by name (`custom.<name>` in configuration).
    Custom(String),
    /// The user's first phone number (any type).
    Phone,
}

impl SourceAttribute {
    /// Parses the configuration spelling: `username`, `email`, `first_name`, `last_name`,
    /// `display_name`, `alias1`..`alias8`, `custom.<name>`, `phone`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(name) = text.strip_prefix("custom.") {
            return (!name.is_empty()).then(|| Self::Custom(name.to_owned()));
        }
        if let Some(n) = text.strip_prefix("alias") {
            let n: u8 = n.parse().ok()?;
            return (1..=8).contains(&n).then_some(Self::Alias(n));
        }
        Some(match text {
            "username" => Self::Username,
            "email" => Self::Email,
            "first_name" | "firstname" => Self::FirstName,
            "last_name" | "lastname" => Self::LastName,
            "display_name" | "realname" => Self::DisplayName,
            "phone" => Self::Phone,
            _ => return None,
        })
    }
}

/// Duo's name for the attribute (`username`, `email`, `firstname`, `lastname`, `realname`,
/// `alias1`, `custom.<name>`, `phone`), which [`SourceAttribute::parse`] accepts back.
impl std::fmt::Display for SourceAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Username => f.write_str("username"),
            Self::Email => f.write_str("email"),
            Self::FirstName => f.write_str("firstname"),
            Self::LastName => f.write_str("lastname"),
            Self::DisplayName => f.write_str("realname"),
            Self::Alias(n) => write!(f, "alias{n}"),
            Self::Custom(name) => write!(f, "custom.{name}"),
            Self::Phone => f.write_str("phone"),
        }
    }
}

/// How a family name (and a missing given name) is derived from the full name when the source
/// has no last name (configuration: `name_split` in a connection's mapping). The rule is
/// described, with examples, in [`crate::mapping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NameSplit {
    /// Family name = the last word of the full name, given name = the words before it
    /// ("Ada Lovelace" → Ada / Lovelace); one word is the family name alone.
    #[default]
    LastWord,
    /// Family name = the first word, given name = the rest, for names written family name
    /// first ("Tanaka Hanako" → Hanako / Tanaka); one word is the family name alone.
    FirstWord,
    /// No derivation: the names are the source's first and last name only.
    None,
}

impl NameSplit {
    /// Every rule with its configuration spelling.
    pub const ALL: [(NameSplit, &'static str); 3] = [
        (Self::LastWord, "last_word"),
        (Self::FirstWord, "first_word"),
        (Self::None, "none"),
    ];

    /// Parses the configuration spelling (`last_word`, `first_word`, `none`), ignoring case
    /// and surrounding spaces.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(text))
            .map(|(r, _)| *r)
    }

    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("", |(_, n)| n)
    }
}

/// How source attributes become target attributes.
///
/// The defaults are fixed: userName ← email, name.givenName/familyName ← first/last name,
/// displayName ← display name, `emails[work]` ← email, active ← status and scope,
/// externalId ← source id, and the SSO identifier ← `sso_identifier` (the address the SAML
/// assertion carries, email by default). The optional ones are `None` until mapped. A missing
/// family name is derived from the full name by [`Mapping::name_split`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// Where userName comes from; must yield an email address. Default: email.
    pub user_name: SourceAttribute,
    /// Appended to every userName (`jane@acme.com` → `jane@acme.com.acme`): Salesforce
    /// usernames are unique across all organisations, and a suffix is how many orgs keep
    /// theirs apart from a sandbox's or another company's. Matching and SSO are unaffected
    /// (the Federation ID keeps the plain address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name_suffix: Option<String>,
    /// Where the SSO / Federation identifier comes from. Default: email.
    pub sso_identifier: SourceAttribute,
    pub nick_name: Option<SourceAttribute>,
    pub title: Option<SourceAttribute>,
    pub work_phone: Option<SourceAttribute>,
    pub employee_number: Option<SourceAttribute>,
    pub department: Option<SourceAttribute>,
    pub division: Option<SourceAttribute>,
    pub organization: Option<SourceAttribute>,
    pub cost_center: Option<SourceAttribute>,
    /// Maps to the manager's *source* id; the planner turns it into the manager's target id.
    pub manager: Option<SourceAttribute>,
    /// How name.familyName (and a missing name.givenName) is derived when the source has no
    /// last name. Default: [`NameSplit::LastWord`].
    #[serde(default)]
    pub name_split: NameSplit,
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            user_name: SourceAttribute::Email,
            user_name_suffix: None,
            sso_identifier: SourceAttribute::Email,
            nick_name: None,
            title: None,
            work_phone: None,
            employee_number: None,
            department: None,
            division: None,
            organization: None,
            cost_center: None,
            manager: None,
            name_split: NameSplit::LastWord,
        }
    }
}

/// What one governance rule assigns, naming catalogue entries by display name or id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Exactly one profile.
    pub profile: String,
    #[serde(default)]
    pub permission_sets: Vec<String>,
    /// At most one role.
    #[serde(default)]
    pub role: Option<String>,
}

/// A group rule: applies to users in any of its groups and overrides the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRuleSpec {
    pub groups: Vec<GroupSelector>,
    /// 1 is the highest priority; a user in several rule groups gets the rule with the lowest
    /// number, whole.
    pub priority: u32,
    #[serde(flatten)]
    pub rule: RuleSpec,
}

/// The governance rules of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Governance {
    /// Applies to everyone not covered by a group rule; required for Salesforce.
    pub baseline: Option<RuleSpec>,
    #[serde(default)]
    pub group_rules: Vec<GroupRuleSpec>,
    /// When true the engine removes any permission set the rule does not name; when false
    /// (the default) only those it assigned itself.
    #[serde(default)]
    pub authoritative_permission_sets: bool,
    /// Profiles (by name or id) whose users may not be members of groups, for targets that do
    /// not say so themselves; the engine also learns them from the target's refusals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles_without_groups: Vec<String>,
}

/// Limits on destructive changes per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Safety {
    /// At most this many deactivations in one run.
    pub max_deactivations: Option<u32>,
    /// At most this percentage (0–100) of the users the engine manages deactivated in one run.
    pub max_deactivation_percent: Option<f64>,
}

impl Default for Safety {
    fn default() -> Self {
        Self {
            max_deactivations: Some(50),
            max_deactivation_percent: Some(10.0),
        }
    }
}

/// The whole policy of one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub target_kind: TargetKind,
    pub scope: Scope,
    /// Provision users only: no group is created, renamed or changed.
    pub exclude_groups: bool,
    pub mapping: Mapping,
    pub governance: Governance,
    pub safety: Safety,
    /// Most members added or removed in one group PATCH.
    pub member_batch_size: usize,
    /// The most calls to the target in a rolling 24 hours (`None`: no cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_budget: Option<crate::budget::ApiBudget>,
    /// How often a run reads the whole target (a full run: drift found and repaired); runs
    /// in between read only the objects whose desired state changed. Default: a day.
    #[serde(default = "default_full_every")]
    pub full_every: std::time::Duration,
}

/// [`Policy::full_every`] when not configured: a day.
pub const DEFAULT_FULL_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

fn default_full_every() -> std::time::Duration {
    DEFAULT_FULL_EVERY
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            target_kind: TargetKind::Salesforce,
            scope: Scope::All,
            exclude_groups: false,
            mapping: Mapping::default(),
            governance: Governance::default(),
            safety: Safety::default(),
            member_batch_size: 100,
            api_budget: None,
            full_every: DEFAULT_FULL_EVERY,
        }
    }
}

/// One problem found in a configuration or policy, with the path of the offending key
/// relative to the connection (`governance.group_rules[2].profile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Problems as an indented list, one `  - path: message` line each (configuration and
    /// policy errors alike).
    pub fn list(problems: &[Problem]) -> String {
        problems
            .iter()
            .map(|p| format!("  - {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The same problem with `prefix.` put before its path.
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
