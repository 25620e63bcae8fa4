//! Showing a plan to people ([`Plan::to_table`]) and to programs ([`Plan::to_json`]).
//!
//! # JSON
//!
//! [`Plan::to_json`] is serde's form of [`Plan`], pretty-printed. Top-level fields:
//! - `operations`: array in apply order; each object has `op` (`create_user`, `adopt_user`,
//!   `update_user`, `reactivate_user`, `deactivate_user`, `create_group`, `adopt_group`,
//!   `rename_group`, `add_members`, `remove_members`) and that operation's fields:
//!   `source_id`, `target_id`, `user_name`, `attributes` (create: `user_name`, `external_id`,
//!   `given_name`, `family_name`, `display_name`, `nick_name`, `title`, `email`, `work_phone`,
//!   `federation_id`, `enterprise`, `profile`, `permission_sets`, `role`), `changes` (update and
//!   reactivate: only the attributes that change; `null` clears one; `entitlements` is
//!   `{profile, profile_changed, permission_sets, added, removed}`; `active`), `matched_by`
//!   (`external_id`, `user_name`), `reason` (`left_directory`, `out_of_scope`, `disabled`,
//!   `pending_deletion`), `name`, `from`, `to`, `group` (`{source_id, target_id?, name}`) and
//!   `members` (`[{source_id?, target_id?, user_name}]`);
//! - `rejected`: `[{object, source_id, name, field, reason}]`, `object` is `user` or `group`;
//! - `notes`: `[{kind, object, source_id, name, message}]`, `kind` is
//!   `email_pending_verification`, `refused_earlier`, `profile_forbids_groups`, `conflict`,
//!   `not_declared` (the target does not declare mapped attributes; `object` is `connection`),
//!   `source_unidentified`, `unknown_group` (the user lists a group id the directory's groups
//!   do not contain) or `source_problem` (the reader found a duplicate id or email);
//! - `summary`: the counts of [`crate::plan::Summary`] under their field names;
//! - `decisions` (when the plan recorded some: a real run records those of the users it
//!   changes): `[{source_id, user_name, in_scope, scope_groups, enabled, account, rule,
//!   names, profile, member, rejected, attributes, left_groups}]`, `rule` is `{priority?,
//!   group?, profile, permission_sets, role?}` (no priority: the baseline), `attributes` is
//!   `[{attribute, from, old?, new?}]` (catalogue ids for `profile`, `permissionSets`,
//!   `roles`), `left_groups` the source ids of the scope groups a deactivated user left.
//!
//! Tables (and the activity log) show the same with names: [`details`].
//!
//! Absent optional fields are left out rather than written as `null`, except inside `changes`
//! where `null` means "clear".

use crate::plan::{AttributeWhy, Decision, Operation, Plan, UserAttributes, UserChanges, UserRef};
use crate::source::DirectoryGroup;
use crate::target::Catalogue;
use compact_str::CompactString;
use std::collections::HashMap;
use std::fmt::Write as _;

/// The names people gave catalogue entries and groups, by id: tables show these, JSON the ids.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    names: HashMap<String, String>,
}

impl Labels {
    pub fn new(catalogue: &Catalogue, groups: &[DirectoryGroup]) -> Self {
        let names = catalogue
            .profiles
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .chain(
                catalogue
                    .permission_sets
                    .iter()
                    .chain(&catalogue.roles)
                    .map(|e| (e.id.clone(), e.name.clone())),
            )
            .chain(
                groups
                    .iter()
                    .map(|g| (g.id.to_string(), g.name.to_string())),
            )
            .collect();
        Self { names }
    }

    /// The name of `id`, else `id` itself.
    pub fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }
}

/// What a table row needs besides the operation: names, and the planner's decisions.
struct Context<'a> {
    labels: &'a Labels,
    decisions: HashMap<&'a str, &'a Decision>,
}

impl crate::plan::Summary {
    /// The summary line a plan's table ends with.
    pub fn line(&self) -> String {
        format!(
            "Users: {} to create, {} to adopt, {} to update, {} to reactivate, {} to deactivate, {} unchanged. \
             Groups: {} to create, {} to adopt, {} to rename. Members: +{} -{}. Rejected: {}. Notes: {}. \
             Held (refused earlier, not sent again): {}.",
            self.create_user,
            self.adopt_user,
            self.update_user,
            self.reactivate_user,
            self.deactivate_user,
            self.unchanged_users,
            self.create_group,
            self.adopt_group,
            self.rename_group,
            self.members_added,
            self.members_removed,
            self.rejected,
            self.notes,
            self.held
        )
    }
}

/// At most this many member names are listed in a table row.
const LISTED_MEMBERS: usize = 3;

/// Text for a terminal: control characters (newlines, escape sequences, C1 codes) and
/// bidirectional overrides are shown escaped (`\n`, `\u{1b}`), so values from the directory or
/// the target cannot forge lines or colour the screen.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl Plan {
    /// The rows of [`Plan::to_table_with`]: for each operation, in apply order, its kind, the
    /// object (userName or group name) and the details, with names and the rule that chose
    /// each user's entitlements (for HTML tables and other renderings of the same words).
    pub fn rows_with(&self, labels: &Labels) -> Vec<[String; 3]> {
        let context = Context {
            labels,
            decisions: self
                .decisions
                .iter()
                .map(|d| (d.source_id.as_str(), d))
                .collect(),
        };
        self.operations.iter().map(|op| row(op, &context)).collect()
    }

    /// A short fingerprint of what applying this plan would send: FNV-1a over the JSON of
    /// its operations (not its notes, rejections or decisions, which send nothing). Two
    /// plans with the same fingerprint make the same writes; an approval names the
    /// fingerprint of the plan that was shown, so that only that plan is approved.
    pub fn fingerprint(&self) -> String {
        let operations = serde_json::to_string(&self.operations).unwrap_or_default();
        crate::links::fingerprint(&[&operations])
    }

    /// The plan as JSON (see the module documentation for the fields).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// The plan as a table for people: one row per operation (op, object, details), then the
    /// rejected objects, the notes and a summary line.
    pub fn to_table(&self) -> String {
        self.to_table_with(&Labels::default())
    }

    /// [`Plan::to_table`] with catalogue entries and groups named as people configured them,
    /// and — for the users whose [`Decision`]s the plan recorded — the rule that chose their
    /// entitlements.
    pub fn to_table_with(&self, labels: &Labels) -> String {
        let rows: Vec<[String; 3]> = self
            .rows_with(labels)
            .into_iter()
            .map(|row| row.map(|cell| printable(&cell).into_owned()))
            .collect();
        let mut out = String::new();
        if rows.is_empty() {
            out.push_str("Nothing to do.\n");
        } else {
            let header = ["OP".to_owned(), "OBJECT".to_owned(), "DETAILS".to_owned()];
            let w0 = rows
                .iter()
                .chain([&header])
                .map(|r| r[0].chars().count())
                .max()
                .unwrap_or(0);
            let w1 = rows
                .iter()
                .chain([&header])
                .map(|r| r[1].chars().count())
                .max()
                .unwrap_or(0);
            for r in [&header].into_iter().chain(rows.iter()) {
                let line = format!("{:<w0$}  {:<w1$}  {}", r[0], r[1], r[2]);
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        if !self.rejected.is_empty() {
            let _ = writeln!(out, "\nRejected ({}):", self.rejected.len());
            for r in &self.rejected {
                let kind = r.object.as_str();
                let _ = writeln!(
                    out,
                    "  {kind} {} ({}): {}: {}",
                    printable(&r.name),
                    printable(&r.source_id),
                    r.field,
                    printable(&r.reason)
                );
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNotes ({}):", self.notes.len());
            for n in &self.notes {
                let kind = serde_json::to_value(n.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {} ({}) [{kind}]: {}",
                    printable(&n.name),
                    printable(&n.source_id),
                    printable(&n.message)
                );
            }
        }
        let _ = writeln!(out, "\n{}", self.summary.line());
        out
    }
}

fn row(op: &Operation, cx: &Context<'_>) -> [String; 3] {
    let object = match op {
        Operation::CreateUser { attributes, .. } => attributes.user_name.clone(),
        Operation::AdoptUser { user_name, .. }
        | Operation::UpdateUser { user_name, .. }
        | Operation::ReactivateUser { user_name, .. }
        | Operation::DeactivateUser { user_name, .. } => user_name.clone(),
        Operation::CreateGroup { name, .. } | Operation::AdoptGroup { name, .. } => name.clone(),
        Operation::RenameGroup { to, .. } => to.clone(),
        Operation::AddMembers { group, .. } | Operation::RemoveMembers { group, .. } => {
            group.name.clone()
        }
    };
    let decision = match op {
        Operation::CreateUser { source_id, .. }
        | Operation::UpdateUser { source_id, .. }
        | Operation::ReactivateUser { source_id, .. }
        | Operation::DeactivateUser { source_id, .. } => {
            cx.decisions.get(source_id.as_str()).copied()
        }
        _ => None,
    };
    [
        op.kind().to_owned(),
        object.into(),
        details(op, cx.labels, decision),
    ]
}

/// Why the user's entitlements are what they are: `by the baseline rule`, `by group rule 1
/// (member of Admins)` (the rule's priority, and the group through which it applies).
pub fn rule_text(decision: &Decision, labels: &Labels) -> Option<String> {
    let rule = decision.rule.as_ref()?;
    Some(match (rule.priority, &rule.group) {
        (Some(p), Some(g)) => format!("by group rule {p} (member of {})", labels.name(g.as_str())),
        _ => "by the baseline rule".to_owned(),
    })
}

/// One attribute of an explanation: `attribute: old → new ← source` (`attribute: new ←
/// source` on a creation), catalogue entries by name.
pub fn attribute_text(a: &AttributeWhy, labels: &Labels, created: bool) -> String {
    let shown = |v: &Option<String>, none: &str| match v {
        None => none.to_owned(),
        Some(v) if matches!(a.attribute.as_str(), "profile" | "roles") => labels.name(v).to_owned(),
        Some(v) if a.attribute == "permissionSets" => v
            .split(", ")
            .map(|p| labels.name(p))
            .collect::<Vec<_>>()
            .join(" + "),
        Some(v) => v.clone(),
    };
    let new = shown(&a.new, "(cleared)");
    let mut text = if created {
        format!("{}: {new}", a.attribute)
    } else {
        format!("{}: {} → {new}", a.attribute, shown(&a.old, "(none)"))
    };
    if !a.from.is_empty() && a.from != "rule" {
        let _ = write!(text, " ← {}", a.from);
    }
    text
}

/// The details of an operation for people (a table's last column, the activity log's detail):
/// with the user's [`Decision`], each attribute as `attribute: old → new ← source`, the rule
/// that chose the entitlements, and what made a deactivated user leave; catalogue entries and
/// groups by name.
pub fn details(op: &Operation, labels: &Labels, decision: Option<&Decision>) -> String {
    let why = |text: String, entitled: bool| match decision.and_then(|d| rule_text(d, labels)) {
        Some(why) if entitled => format!("{text} ({why})"),
        _ => text,
    };
    let explained = |created: bool| {
        decision.filter(|d| !d.attributes.is_empty()).map(|d| {
            d.attributes
                .iter()
                .map(|a| attribute_text(a, labels, created))
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    match op {
        Operation::CreateUser { attributes, .. } => why(
            explained(true).unwrap_or_else(|| created(attributes, labels)),
            attributes.profile.is_some(),
        ),
        Operation::AdoptUser {
            target_id,
            matched_by,
            ..
        } => {
            let by = match matched_by {
                crate::plan::MatchedBy::ExternalId => "externalId",
                crate::plan::MatchedBy::UserName => "userName",
                crate::plan::MatchedBy::Name => "name",
            };
            format!("account {target_id}, matched by {by}")
        }
        Operation::UpdateUser { changes, .. } | Operation::ReactivateUser { changes, .. } => why(
            explained(false).unwrap_or_else(|| changed(changes, labels)),
            changes.entitlements.is_some() || changes.role.is_some(),
        ),
        Operation::DeactivateUser { reason, .. } => {
            let left: Vec<&str> = decision
                .map(|d| {
                    d.left_groups
                        .iter()
                        .map(|g| labels.name(g.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            match reason {
                crate::plan::DeactivationReason::LeftDirectory => {
                    "removed from the source directory".to_owned()
                }
                crate::plan::DeactivationReason::OutOfScope if !left.is_empty() => format!(
                    "out of scope: left group {} (the scope group it was provisioned through)",
                    left.join(", ")
                ),
                crate::plan::DeactivationReason::OutOfScope => {
                    "out of scope: in none of the scope groups".to_owned()
                }
                crate::plan::DeactivationReason::Disabled => {
                    "disabled in the directory (status disabled)".to_owned()
                }
                crate::plan::DeactivationReason::PendingDeletion => {
                    "pending deletion in the directory".to_owned()
                }
            }
        }
        Operation::CreateGroup { .. } => String::new(),
        Operation::AdoptGroup { target_id, .. } => format!("group {target_id}"),
        Operation::RenameGroup { from, .. } => format!("from {from:?}"),
        Operation::AddMembers { members, .. } => member_list('+', members),
        Operation::RemoveMembers { members, .. } => member_list('-', members),
    }
}

fn member_list(sign: char, members: &[UserRef]) -> String {
    let mut names: Vec<&str> = members
        .iter()
        .take(LISTED_MEMBERS)
        .map(|m| m.user_name.as_str())
        .collect();
    let more = members.len().saturating_sub(LISTED_MEMBERS);
    let more_text = if more > 0 {
        format!(", … {more} more")
    } else {
        String::new()
    };
    names.retain(|n| !n.is_empty());
    format!(
        "{sign}{} members: {}{more_text}",
        members.len(),
        names.join(", ")
    )
}

fn push(out: &mut Vec<String>, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.push(format!("{name}={v}"));
    }
}

fn created(a: &UserAttributes, labels: &Labels) -> String {
    let mut parts = Vec::new();
    push(&mut parts, "emails", Some(&a.email));
    push(&mut parts, "name.givenName", a.given_name.as_deref());
    push(&mut parts, "name.familyName", a.family_name.as_deref());
    push(&mut parts, "displayName", a.display_name.as_deref());
    push(&mut parts, "nickName", a.nick_name.as_deref());
    push(&mut parts, "title", a.title.as_deref());
    push(&mut parts, "phoneNumbers", a.work_phone.as_deref());
    let e = &a.enterprise;
    push(&mut parts, "employeeNumber", e.employee_number.as_deref());
    push(&mut parts, "department", e.department.as_deref());
    push(&mut parts, "division", e.division.as_deref());
    push(&mut parts, "organization", e.organization.as_deref());
    push(&mut parts, "costCenter", e.cost_center.as_deref());
    push(&mut parts, "manager", e.manager.as_deref());
    push(
        &mut parts,
        "profile",
        a.profile.as_deref().map(|p| labels.name(p)),
    );
    if !a.permission_sets.is_empty() {
        let sets: Vec<&str> = a.permission_sets.iter().map(|p| labels.name(p)).collect();
        parts.push(format!("permissionSets={}", sets.join("+")));
    }
    push(
        &mut parts,
        "role",
        a.role.as_deref().map(|r| labels.name(r)),
    );
    parts.join(", ")
}

fn value(v: &Option<CompactString>) -> String {
    v.as_deref().unwrap_or("(cleared)").to_owned()
}

fn changed(c: &UserChanges, labels: &Labels) -> String {
    let mut parts = Vec::new();
    let mut opt = |name: &str, v: &Option<Option<CompactString>>| {
        if let Some(v) = v {
            parts.push(format!("{name}={}", value(v)));
        }
    };
    opt("name.givenName", &c.given_name);
    opt("name.familyName", &c.family_name);
    opt("displayName", &c.display_name);
    opt("title", &c.title);
    opt("phoneNumbers", &c.work_phone);
    opt("federationId", &c.federation_id);
    let e = &c.enterprise;
    opt("employeeNumber", &e.employee_number);
    opt("department", &e.department);
    opt("division", &e.division);
    opt("organization", &e.organization);
    opt("costCenter", &e.cost_center);
    opt("manager", &e.manager);
    let role = c
        .role
        .as_ref()
        .map(|r| r.as_ref().map(|r| CompactString::from(labels.name(r))));
    opt("roles", &role);
    let mut first = Vec::new();
    if let Some(v) = &c.user_name {
        first.push(format!("userName={v}"));
    }
    if let Some(v) = &c.external_id {
        first.push(format!("externalId={v}"));
    }
    if let Some(v) = &c.nick_name {
        first.push(format!("nickName={v}"));
    }
    if let Some(v) = &c.email {
        first.push(format!("emails={v}"));
    }
    if let Some(ent) = &c.entitlements {
        let mut text = String::from("entitlements:");
        if ent.profile_changed {
            let _ = write!(text, " profile={}", labels.name(&ent.profile));
        }
        for a in &ent.added {
            let _ = write!(text, " +{}", labels.name(a));
        }
        for r in &ent.removed {
            let _ = write!(text, " -{}", labels.name(r));
        }
        parts.push(text);
    }
    if let Some(active) = c.active {
        parts.push(format!("active={active}"));
    }
    first.extend(parts);
    first.join(", ")
}

#[cfg(test)]
mod tests {
    use crate::links::Links;
    use crate::planner::plan;
    use crate::testing::*;
    use crate::time::Timestamp;

    #[test]
    fn tables_and_json_name_what_happens() {
        let s = crate::source::SourceSnapshot {
            users: vec![
                in_groups(user("DU1", "ada@example.com"), &["DG1"]),
                user("DU2", "a.very.long.name.indeed.for.sure@example.com"),
            ],
            groups: vec![group("DG1", "Sales")],
            sso_access: None,
            unreadable: Vec::new(),
            unidentified: Vec::new(),
            problems: Vec::new(),
        };
        let p = plan(
            &s,
            &empty_target(),
            &Links::default(),
            &salesforce_policy(),
            Timestamp(0),
        )
        .unwrap();
        let table = p.to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "OP            OBJECT           DETAILS");
        assert_eq!(lines[1], "create_group  Sales");
        assert!(
            lines[2].starts_with(
                "create_user   ada@example.com  emails=ada@example.com, name.givenName=ada"
            ),
            "{table}"
        );
        assert!(
            lines[2].ends_with(&format!("profile={STANDARD_USER}")),
            "{table}"
        );
        assert_eq!(
            lines[3],
            "add_members   Sales            +1 members: ada@example.com"
        );
        assert!(table.contains("Rejected (1):\n  user a.very.long.name.indeed.for.sure@example.com (DU2): nickName:"), "{table}");
        assert!(table.contains("Users: 1 to create, 0 to adopt"), "{table}");

        let json: serde_json::Value = serde_json::from_str(&p.to_json().unwrap()).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["notes", "operations", "rejected", "summary"]);
        assert_eq!(json["operations"][1]["op"], "create_user");
        assert_eq!(
            json["operations"][1]["attributes"]["user_name"],
            "ada@example.com"
        );
        assert_eq!(json["operations"][2]["members"][0]["source_id"], "DU1");
        assert_eq!(json["rejected"][0]["field"], "nickName");
        assert_eq!(json["summary"]["create_user"], 1);
        let back: crate::plan::Plan = serde_json::from_str(&p.to_json().unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn an_empty_plan_says_so() {
        let p = crate::plan::Plan::default();
        assert!(p.to_table().starts_with("Nothing to do.\n"));
    }

    /// Explanations: each planned change of entitlements says which rule chose it, with the
    /// names people configured; the table shows no catalogue id.
    #[test]
    fn tables_explain_which_rule_chose_the_entitlements_by_name() {
        use crate::plan::Explain;
        use crate::planner::plan_explained;
        use crate::policy::{GroupRuleSpec, RuleSpec};
        use crate::render::Labels;
        let rule = |profile: &str, sets: &[&str], role: Option<&str>| RuleSpec {
            profile: profile.into(),
            permission_sets: sets.iter().map(|s| (*s).to_owned()).collect(),
            role: role.map(str::to_owned),
        };
        let mut policy = salesforce_policy();
        policy.governance.baseline = Some(rule("Standard User", &["Sales Cloud"], None));
        policy.governance.group_rules = vec![
            GroupRuleSpec {
                groups: vec!["Admins".into()],
                priority: 1,
                rule: rule("System Administrator", &[], Some("CEO")),
            },
            GroupRuleSpec {
                groups: vec!["Support".into()],
                priority: 2,
                rule: rule("Standard User", &["Service Cloud"], None),
            },
            GroupRuleSpec {
                groups: vec!["Chatter".into()],
                priority: 3,
                rule: rule("Chatter Free User", &[], None),
            },
        ];
        let groups = vec![
            group("DG1", "Admins"),
            group("DG2", "Support"),
            group("DG3", "Chatter"),
        ];
        let mut s = crate::source::SourceSnapshot {
            users: vec![
                user("DU1", "base@example.com"),
                in_groups(user("DU2", "both@example.com"), &["DG2", "DG1"]),
                in_groups(user("DU3", "mover@example.com"), &["DG2"]),
                user("DU4", "free@example.com"),
            ],
            groups,
            sso_access: None,
            unreadable: Vec::new(),
            unidentified: Vec::new(),
            problems: Vec::new(),
        };
        let mut target = empty_target();
        let mut links = Links::default();
        let everyone = Explain::Everyone;
        let p = plan_explained(&s, &target, &links, &policy, Timestamp(0), &everyone).unwrap();
        let labels = Labels::new(&target.catalogue, &s.groups);
        let table = p.to_table_with(&labels);
        let line = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with("create_user") && l.contains(name))
                .unwrap_or_default()
                .to_owned()
        };
        // The baseline; each attribute says which source attribute it comes from.
        let base = line("base@example.com");
        assert!(
            base.contains(
                "profile: Standard User, permissionSets: Sales Cloud (by the baseline rule)"
            ),
            "{table}"
        );
        assert!(
            base.contains("userName: base@example.com ← email")
                && base.contains("emails[work].value: base@example.com ← email")
                && base.contains("name.familyName: Tester ← lastname")
                && base.contains("externalId: DU1 ← user_id"),
            "{base}"
        );
        // A user in two rule groups gets the rule of priority 1, whole.
        let both = line("both@example.com");
        assert!(
            both.contains("profile: System Administrator, roles: CEO")
                && both.ends_with("(by group rule 1 (member of Admins))"),
            "{both}"
        );
        assert!(
            !both.contains("Service Cloud"),
            "nothing of the rule of priority 2: {both}"
        );
        for id in [STANDARD_USER, SYSTEM_ADMINISTRATOR, SALES_CLOUD, CEO_ROLE] {
            assert!(!table.contains(id), "names, not ids: {table}");
        }
        // The JSON keeps the ids, in the decisions the table is a view of.
        let json: serde_json::Value = serde_json::from_str(&p.to_json().unwrap()).unwrap();
        let decision = json["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["source_id"] == "DU2")
            .unwrap();
        assert_eq!(decision["rule"]["priority"], 1);
        assert_eq!(decision["rule"]["group"], "DG1");
        let profile = decision["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["attribute"] == "profile")
            .unwrap();
        assert_eq!(profile["new"], SYSTEM_ADMINISTRATOR);

        // A rule move: the mover joins Admins; a new title and last name show what the
        // account had.
        crate::testing::apply(&p, &mut target, &mut links, Timestamp(0)).unwrap();
        s.users[2].groups.push("DG1".into());
        s.users[2].last_name = None;
        s.users[2].display_name = Some("Mover Byron-King".into());
        // A refused licence change: the free user moves to the Chatter rule.
        s.users[3].groups.push("DG3".into());
        let p = plan_explained(&s, &target, &links, &policy, Timestamp(0), &everyone).unwrap();
        let table = p.to_table_with(&labels);
        let mover = table
            .lines()
            .find(|l| l.contains("mover@example.com"))
            .unwrap_or_default();
        assert!(
            mover.contains("name.familyName: Tester → Byron-King ← realname (last word)")
                && mover.contains("profile: Standard User → System Administrator")
                && mover.contains("permissionSets: Service Cloud → (cleared)")
                && mover.contains("roles: (none) → CEO")
                && mover.ends_with("(by group rule 1 (member of Admins))"),
            "{table}"
        );
        assert!(
            table.contains(
                "free@example.com (DU4): profile: the rule assigns profile \"Chatter Free User\""
            ),
            "the refusal names both profiles: {table}"
        );
        assert!(
            !table
                .lines()
                .any(|l| l.contains("free@example.com") && l.contains("Chatter Free User →")),
            "the refused profile is not planned: {table}"
        );
    }

    /// A deactivation names what changed: the scope group the user left, the status, or the
    /// user's removal from the source.
    #[test]
    fn deactivations_name_the_scope_group_left() {
        use crate::plan::Explain;
        use crate::planner::plan_explained;
        use crate::policy::Scope;
        use crate::render::Labels;
        let mut policy = salesforce_policy();
        policy.scope = Scope::Groups(vec!["Sales".into(), "Support".into()]);
        let mut s = crate::source::SourceSnapshot {
            users: vec![
                in_groups(user("DU1", "leaver@example.com"), &["DG1"]),
                in_groups(user("DU2", "off@example.com"), &["DG1"]),
                in_groups(user("DU3", "gone@example.com"), &["DG2"]),
            ],
            groups: vec![group("DG1", "Sales"), group("DG2", "Support")],
            sso_access: None,
            unreadable: Vec::new(),
            unidentified: Vec::new(),
            problems: Vec::new(),
        };
        let (mut target, mut links) = (empty_target(), Links::default());
        let p = plan(&s, &target, &links, &policy, Timestamp(0)).unwrap();
        crate::testing::apply(&p, &mut target, &mut links, Timestamp(0)).unwrap();
        s.users[0].groups.clear();
        s.users[1].status = crate::source::DirectoryStatus::Disabled;
        s.users.remove(2);
        let p = plan_explained(
            &s,
            &target,
            &links,
            &policy,
            Timestamp(0),
            &Explain::Changed,
        )
        .unwrap();
        let table = p.to_table_with(&Labels::new(&target.catalogue, &s.groups));
        let line = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with("deactivate_user") && l.contains(name))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            line("leaver@example.com").ends_with(
                "out of scope: left group Sales (the scope group it was provisioned through)"
            ),
            "{table}"
        );
        assert!(
            line("off@example.com").ends_with("disabled in the directory (status disabled)"),
            "{table}"
        );
        assert!(
            line("gone@example.com").ends_with("removed from the source directory"),
            "{table}"
        );
        // Only the users the plan changes have a decision recorded.
        let decided: Vec<&str> = p.decisions.iter().map(|d| d.source_id.as_str()).collect();
        assert_eq!(decided, ["DU1", "DU2"]);
    }
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert_eq!(printable("ada@example.com"), "ada@example.com");
        assert_eq!(
            printable("a\nb\u{1b}[31m\u{202e}c\u{85}"),
            "a\\nb\\u{1b}[31m\\u{202e}c\\u{85}"
        );
    }
}
