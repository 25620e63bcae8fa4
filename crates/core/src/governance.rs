//! Checking a policy ([`Policy::validate`]) and resolving its names against what exists:
//! governance rules against the target's catalogue, group selectors against the source's
//! groups ([`resolve`], [`resolve_scope`]).

use crate::ids::SourceGroupId;
use crate::policy::{Governance, GroupSelector, Policy, Problem, RuleSpec, Scope, TargetKind};
use crate::source::{DirectoryGroup, SourceSnapshot, SsoAccess};
use crate::target::{Catalogue, CatalogueEntry, Profile};
use compact_str::CompactString;
use std::collections::{BTreeMap, BTreeSet};

impl Policy {
    /// Every problem of this policy at once, each with its path. Empty when valid.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let gov = &self.governance;
        if self.target_kind == TargetKind::Salesforce && gov.baseline.is_none() {
            problems.push(Problem::new(
                "governance.baseline",
                "a baseline rule is required for Salesforce: every user created needs exactly one profile",
            ));
        }
        if let Some(baseline) = &gov.baseline {
            check_rule(baseline, "governance.baseline", &mut problems);
        }
        let mut group_owner: BTreeMap<String, usize> = BTreeMap::new();
        let mut priorities: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, rule) in gov.group_rules.iter().enumerate() {
            let path = format!("governance.group_rules[{i}]");
            check_rule(&rule.rule, &path, &mut problems);
            if rule.groups.is_empty() {
                problems.push(Problem::new(
                    format!("{path}.groups"),
                    "a group rule needs at least one group",
                ));
            }
            for (j, group) in rule.groups.iter().enumerate() {
                let key = group.trim().to_lowercase();
                if key.is_empty() {
                    problems.push(Problem::new(
                        format!("{path}.groups[{j}]"),
                        "empty group name",
                    ));
                    continue;
                }
                match group_owner.get(&key) {
                    Some(&other) if other != i => problems.push(Problem::new(
                        format!("{path}.groups[{j}]"),
                        format!(
                            "group {group:?} is already in governance.group_rules[{other}]; a group belongs to at most one rule"
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        group_owner.insert(key, i);
                    }
                }
            }
            if let Some(&other) = priorities.get(&rule.priority) {
                problems.push(Problem::new(
                    format!("{path}.priority"),
                    format!(
                        "priority {} is already used by governance.group_rules[{other}]; priorities must be unique",
                        rule.priority
                    ),
                ));
            } else {
                priorities.insert(rule.priority, i);
            }
        }
        if let Scope::Groups(groups) = &self.scope {
            if groups.is_empty() {
                problems.push(Problem::new(
                    "scope.groups",
                    "the groups scope names no group",
                ));
            }
            for (i, g) in groups.iter().enumerate() {
                if g.trim().is_empty() {
                    problems.push(Problem::new(
                        format!("scope.groups[{i}]"),
                        "empty group name",
                    ));
                }
            }
        }
        if let Some(p) = self.safety.max_deactivation_percent
            && !(0.0..=100.0).contains(&p)
        {
            problems.push(Problem::new(
                "safety.max_deactivation_percent",
                format!("{p} is not a percentage between 0 and 100"),
            ));
        }
        if self.member_batch_size == 0 {
            problems.push(Problem::new("member_batch_size", "must be at least 1"));
        }
        problems
    }
}

fn check_rule(rule: &RuleSpec, path: &str, problems: &mut Vec<Problem>) {
    if rule.profile.trim().is_empty() {
        problems.push(Problem::new(
            format!("{path}.profile"),
            "a rule needs exactly one profile; none is named",
        ));
    }
    for (i, ps) in rule.permission_sets.iter().enumerate() {
        if ps.trim().is_empty() {
            problems.push(Problem::new(
                format!("{path}.permission_sets[{i}]"),
                "empty permission set name",
            ));
        }
    }
    if rule.role.as_deref().is_some_and(|r| r.trim().is_empty()) {
        problems.push(Problem::new(
            format!("{path}.role"),
            "empty role name; leave it out to keep roles as they are",
        ));
    }
}

/// A governance rule with catalogue ids instead of names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRule {
    /// The profile id.
    pub profile: CompactString,
    /// Permission set ids, sorted, without duplicates.
    pub permission_sets: Vec<CompactString>,
    /// The role id, when the rule sets one.
    pub role: Option<CompactString>,
}

/// A group rule with resolved groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedGroupRule {
    pub priority: u32,
    pub groups: Vec<SourceGroupId>,
    pub rule: ResolvedRule,
}

/// Governance ready for the planner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedGovernance {
    pub baseline: Option<ResolvedRule>,
    /// Sorted by priority, highest (lowest number) first.
    pub group_rules: Vec<ResolvedGroupRule>,
    pub authoritative_permission_sets: bool,
    /// Profile ids declared to forbid group membership.
    pub profiles_without_groups: BTreeSet<String>,
}

impl ResolvedGovernance {
    /// The rule for a user in `groups`: the highest-priority group rule naming one of them,
    /// whole, else the baseline.
    pub fn rule_for<'a, I>(&'a self, groups: I) -> Option<&'a ResolvedRule>
    where
        I: IntoIterator<Item = &'a SourceGroupId>,
    {
        self.choose(groups).map(|c| c.rule)
    }

    /// [`choose`] over this governance's rules: the rule and why.
    pub fn choose<'a, I>(&'a self, groups: I) -> Option<RuleChoice<'a>>
    where
        I: IntoIterator<Item = &'a SourceGroupId>,
    {
        let groups: Vec<&SourceGroupId> = groups.into_iter().collect();
        let matches = self.group_rules.iter().flat_map(|r| {
            groups
                .iter()
                .filter(|g| r.groups.contains(g))
                .map(move |g| (r.priority, g.as_str(), &r.rule))
        });
        choose(matches, self.baseline.as_ref())
    }
}

/// Which rule a user gets, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleChoice<'r> {
    pub rule: &'r ResolvedRule,
    pub by: ChosenBy<'r>,
}

/// Why a rule applies to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenBy<'r> {
    /// No group rule names any of the user's groups.
    Baseline,
    /// The group rule of `priority`, through the user's group `group` (a source group id).
    GroupRule { priority: u32, group: &'r str },
}

/// The governance rule: of the group rules naming one of a user's groups (`matches`:
/// priority, the group, the rule), the one of highest priority (lowest number; the first on a
/// tie), whole; else the baseline. The one place this rule is decided.
pub fn choose<'r>(
    matches: impl IntoIterator<Item = (u32, &'r str, &'r ResolvedRule)>,
    baseline: Option<&'r ResolvedRule>,
) -> Option<RuleChoice<'r>> {
    matches
        .into_iter()
        .min_by_key(|(priority, _, _)| *priority)
        .map(|(priority, group, rule)| RuleChoice {
            rule,
            by: ChosenBy::GroupRule { priority, group },
        })
        .or_else(|| {
            baseline.map(|rule| RuleChoice {
                rule,
                by: ChosenBy::Baseline,
            })
        })
}

/// Resolves governance names: catalogue entries by id or name (case-insensitive), rule groups
/// against the source's groups (id, then name case-insensitive). Every problem at once.
pub fn resolve(
    governance: &Governance,
    catalogue: &Catalogue,
    groups: &[DirectoryGroup],
) -> Result<ResolvedGovernance, Vec<Problem>> {
    let mut problems = Vec::new();
    let baseline = governance
        .baseline
        .as_ref()
        .and_then(|r| resolve_rule(r, catalogue, "governance.baseline", &mut problems));
    let mut group_rules = Vec::new();
    for (i, spec) in governance.group_rules.iter().enumerate() {
        let path = format!("governance.group_rules[{i}]");
        let rule = resolve_rule(&spec.rule, catalogue, &path, &mut problems);
        let resolved_groups = resolve_groups(
            &spec.groups,
            groups,
            &format!("{path}.groups"),
            &mut problems,
        );
        if let Some(rule) = rule {
            group_rules.push(ResolvedGroupRule {
                priority: spec.priority,
                groups: resolved_groups,
                rule,
            });
        }
    }
    group_rules.sort_by_key(|r| r.priority);
    let mut profiles_without_groups = BTreeSet::new();
    for (i, name) in governance.profiles_without_groups.iter().enumerate() {
        let path = format!("governance.profiles_without_groups[{i}]");
        if let Some(p) = find_profile(name, catalogue, &path, &mut problems) {
            profiles_without_groups.insert(p.id.clone());
        }
    }
    if problems.is_empty() {
        Ok(ResolvedGovernance {
            baseline,
            group_rules,
            authoritative_permission_sets: governance.authoritative_permission_sets,
            profiles_without_groups,
        })
    } else {
        Err(problems)
    }
}

/// The groups in scope: `None` when every user is in scope (`Scope::All`), else the ids of the
/// groups whose members are provisioned.
pub fn resolve_scope(
    scope: &Scope,
    source: &SourceSnapshot,
) -> Result<Option<BTreeSet<SourceGroupId>>, Vec<Problem>> {
    match scope {
        Scope::All => Ok(None),
        Scope::Groups(selectors) => {
            let mut problems = Vec::new();
            let ids = resolve_groups(selectors, &source.groups, "scope.groups", &mut problems);
            if problems.is_empty() {
                Ok(Some(ids.into_iter().collect()))
            } else {
                Err(problems)
            }
        }
        Scope::SsoAccess => match &source.sso_access {
            Some(SsoAccess::AllUsers) => {
                Ok(Some(source.groups.iter().map(|g| g.id.clone()).collect()))
            }
            Some(SsoAccess::Groups(ids)) => Ok(Some(ids.iter().cloned().collect())),
            None => Err(vec![Problem::new(
                "scope",
                "the sso_access scope needs the application's SSO access setting, and the source did not report it; \
                 configure the source's application or choose the groups scope",
            )]),
        },
    }
}

fn resolve_groups(
    selectors: &[GroupSelector],
    groups: &[DirectoryGroup],
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<SourceGroupId> {
    let mut out = Vec::new();
    for (i, sel) in selectors.iter().enumerate() {
        let sel_t = sel.trim();
        let found = groups
            .iter()
            .find(|g| g.id.as_str() == sel_t)
            .or_else(|| groups.iter().find(|g| same_name(&g.name, sel_t)));
        match found {
            Some(g) => out.push(g.id.clone()),
            None => problems.push(Problem::new(
                format!("{path}[{i}]"),
                format!(
                    "no source group with id or name {sel:?}; the source has: {}",
                    list_names(groups.iter().map(|g| g.name.as_str()))
                ),
            )),
        }
    }
    out.sort();
    out.dedup();
    out
}

fn resolve_rule(
    rule: &RuleSpec,
    catalogue: &Catalogue,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<ResolvedRule> {
    let before = problems.len();
    let profile = find_profile(
        &rule.profile,
        catalogue,
        &format!("{path}.profile"),
        problems,
    );
    let mut permission_sets = Vec::new();
    for (i, name) in rule.permission_sets.iter().enumerate() {
        if let Some(e) = find_entry(
            name,
            &catalogue.permission_sets,
            "permission set",
            catalogue,
            &format!("{path}.permission_sets[{i}]"),
            problems,
        ) {
            permission_sets.push(e.id.clone());
        }
    }
    permission_sets.sort();
    permission_sets.dedup();
    let role = rule.role.as_ref().and_then(|name| {
        find_entry(
            name,
            &catalogue.roles,
            "role",
            catalogue,
            &format!("{path}.role"),
            problems,
        )
        .map(|e| e.id.clone())
    });
    (problems.len() == before).then(|| ResolvedRule {
        profile: profile.map(|p| p.id.as_str().into()).unwrap_or_default(),
        permission_sets: permission_sets
            .into_iter()
            .map(CompactString::from)
            .collect(),
        role: role.map(CompactString::from),
    })
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn list_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    names.sort();
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

fn find_profile<'c>(
    name: &str,
    catalogue: &'c Catalogue,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'c Profile> {
    let n = name.trim();
    if n.is_empty() {
        return None; // reported by validate
    }
    if let Some(p) = catalogue
        .profiles
        .iter()
        .find(|p| p.id == n)
        .or_else(|| catalogue.profiles.iter().find(|p| same_name(&p.name, n)))
    {
        return Some(p);
    }
    if catalogue
        .permission_sets
        .iter()
        .any(|e| e.id == n || same_name(&e.name, n))
    {
        problems.push(Problem::new(path, format!("{name:?} is a permission set, not a profile; name it under permission_sets and choose a profile here")));
        return None;
    }
    problems.push(Problem::new(
        path,
        format!(
            "no profile named {name:?}; the target has: {}",
            list_names(catalogue.profiles.iter().map(|p| p.name.as_str()))
        ),
    ));
    None
}

fn find_entry<'c>(
    name: &str,
    entries: &'c [CatalogueEntry],
    what: &str,
    catalogue: &Catalogue,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'c CatalogueEntry> {
    let n = name.trim();
    if n.is_empty() {
        return None;
    }
    if let Some(e) = entries
        .iter()
        .find(|e| e.id == n)
        .or_else(|| entries.iter().find(|e| same_name(&e.name, n)))
    {
        return Some(e);
    }
    if what == "permission set"
        && catalogue
            .profiles
            .iter()
            .any(|p| p.id == n || same_name(&p.name, n))
    {
        problems.push(Problem::new(path, format!("{name:?} is a profile, not a permission set; a rule has exactly one profile, under profile")));
        return None;
    }
    problems.push(Problem::new(
        path,
        format!(
            "no {what} named {name:?}; the target has: {}",
            list_names(entries.iter().map(|e| e.name.as_str()))
        ),
    ));
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{GroupRuleSpec, Safety};

    fn rule(profile: &str) -> RuleSpec {
        RuleSpec {
            profile: profile.into(),
            permission_sets: vec![],
            role: None,
        }
    }

    fn catalogue() -> Catalogue {
        Catalogue {
            profiles: vec![
                Profile {
                    id: "00e1".into(),
                    name: "Standard User".into(),
                    licence: Some("Salesforce".into()),
                    allows_groups: true,
                },
                Profile {
                    id: "00e2".into(),
                    name: "System Administrator".into(),
                    licence: Some("Salesforce".into()),
                    allows_groups: true,
                },
            ],
            permission_sets: vec![CatalogueEntry {
                id: "0PS1".into(),
                name: "Sales Cloud".into(),
            }],
            roles: vec![CatalogueEntry {
                id: "00E1".into(),
                name: "CEO".into(),
            }],
        }
    }

    fn groups() -> Vec<DirectoryGroup> {
        vec![
            DirectoryGroup {
                id: "DG1".into(),
                name: "Sales".into(),
                description: None,
            },
            DirectoryGroup {
                id: "DG2".into(),
                name: "Admins".into(),
                description: None,
            },
        ]
    }

    fn paths(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn validate_reports_every_problem_with_its_path() {
        let policy = Policy {
            scope: Scope::Groups(vec!["Sales".into(), " ".into()]),
            governance: Governance {
                baseline: None,
                group_rules: vec![
                    GroupRuleSpec {
                        groups: vec!["Sales".into()],
                        priority: 1,
                        rule: rule("Standard User"),
                    },
                    GroupRuleSpec {
                        groups: vec!["sales".into()],
                        priority: 1,
                        rule: RuleSpec {
                            profile: "".into(),
                            permission_sets: vec![],
                            role: Some("".into()),
                        },
                    },
                    GroupRuleSpec {
                        groups: vec!["Admins".into()],
                        priority: 3,
                        rule: rule(" "),
                    },
                ],
                authoritative_permission_sets: false,
                profiles_without_groups: Vec::new(),
            },
            safety: Safety {
                max_deactivations: None,
                max_deactivation_percent: Some(120.0),
            },
            member_batch_size: 0,
            ..Policy::default()
        };
        let problems = policy.validate();
        assert_eq!(
            paths(&problems),
            [
                "governance.baseline",
                "governance.group_rules[1].profile",
                "governance.group_rules[1].role",
                "governance.group_rules[1].groups[0]",
                "governance.group_rules[1].priority",
                "governance.group_rules[2].profile",
                "scope.groups[1]",
                "safety.max_deactivation_percent",
                "member_batch_size",
            ]
        );
        assert!(
            problems[3].message.contains("governance.group_rules[0]"),
            "{}",
            problems[3]
        );
    }

    #[test]
    fn baseline_is_optional_for_generic_targets() {
        let policy = Policy {
            target_kind: TargetKind::Generic,
            ..Policy::default()
        };
        assert!(policy.validate().is_empty());
        let policy = Policy {
            governance: Governance {
                baseline: Some(rule("Standard User")),
                ..Governance::default()
            },
            ..Policy::default()
        };
        assert!(policy.validate().is_empty());
    }

    #[test]
    fn resolves_names_and_ids_case_insensitively() {
        let gov = Governance {
            baseline: Some(RuleSpec {
                profile: "standard user".into(),
                permission_sets: vec!["0PS1".into(), "SALES CLOUD".into()],
                role: Some("ceo".into()),
            }),
            group_rules: vec![
                GroupRuleSpec {
                    groups: vec!["admins".into()],
                    priority: 5,
                    rule: rule("00e2"),
                },
                GroupRuleSpec {
                    groups: vec!["DG1".into()],
                    priority: 2,
                    rule: rule("Standard User"),
                },
            ],
            authoritative_permission_sets: true,
            profiles_without_groups: Vec::new(),
        };
        let r = resolve(&gov, &catalogue(), &groups()).unwrap();
        let base = r.baseline.clone().unwrap();
        assert_eq!(
            base,
            ResolvedRule {
                profile: "00e1".into(),
                permission_sets: vec!["0PS1".into()],
                role: Some("00E1".into())
            }
        );
        assert_eq!(
            r.group_rules.iter().map(|g| g.priority).collect::<Vec<_>>(),
            [2, 5]
        );
        let both = [SourceGroupId::from("DG2"), SourceGroupId::from("DG1")];
        assert_eq!(r.rule_for(&both).unwrap().profile, "00e1");
        assert_eq!(r.rule_for(&both[..1]).unwrap().profile, "00e2");
        assert_eq!(r.rule_for(&[]).unwrap(), &base);
        assert!(r.authoritative_permission_sets);
    }

    #[test]
    fn unknown_names_list_what_exists() {
        let gov = Governance {
            baseline: Some(RuleSpec {
                profile: "Sales Usr".into(),
                permission_sets: vec!["Standard User".into(), "Nope".into()],
                role: Some("CTO".into()),
            }),
            group_rules: vec![GroupRuleSpec {
                groups: vec!["Ghosts".into()],
                priority: 1,
                rule: rule("Sales Cloud"),
            }],
            authoritative_permission_sets: false,
            profiles_without_groups: Vec::new(),
        };
        let problems = resolve(&gov, &catalogue(), &groups()).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text[0],
            r#"governance.baseline.profile: no profile named "Sales Usr"; the target has: "Standard User", "System Administrator""#
        );
        assert!(
            text[1].starts_with(
                "governance.baseline.permission_sets[0]: \"Standard User\" is a profile"
            ),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains(r#"no permission set named "Nope"; the target has: "Sales Cloud""#),
            "{}",
            text[2]
        );
        assert!(
            text[3].contains(r#"no role named "CTO"; the target has: "CEO""#),
            "{}",
            text[3]
        );
        assert!(text[4].starts_with("governance.group_rules[0].profile: \"Sales Cloud\" is a permission set, not a profile"), "{}", text[4]);
        assert!(text[5].starts_with("governance.group_rules[0].groups[0]: no source group with id or name \"Ghosts\"; the source has: \"Admins\", \"Sales\""), "{}", text[5]);
    }

    #[test]
    fn resolves_scopes() {
        let mut source = SourceSnapshot {
            groups: groups(),
            ..SourceSnapshot::default()
        };
        assert_eq!(resolve_scope(&Scope::All, &source), Ok(None));
        let ids = resolve_scope(&Scope::Groups(vec!["sales".into()]), &source)
            .unwrap()
            .unwrap();
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            [SourceGroupId::from("DG1")]
        );
        let err =
            resolve_scope(&Scope::Groups(vec!["Sales".into(), "x".into()]), &source).unwrap_err();
        assert_eq!(paths(&err), ["scope.groups[1]"]);
        assert_eq!(
            paths(&resolve_scope(&Scope::SsoAccess, &source).unwrap_err()),
            ["scope"]
        );
        source.sso_access = Some(SsoAccess::AllUsers);
        assert_eq!(
            resolve_scope(&Scope::SsoAccess, &source)
                .unwrap()
                .unwrap()
                .len(),
            2
        );
        source.sso_access = Some(SsoAccess::Groups(vec!["DG2".into()]));
        assert_eq!(
            resolve_scope(&Scope::SsoAccess, &source)
                .unwrap()
                .unwrap()
                .len(),
            1
        );
    }
}
