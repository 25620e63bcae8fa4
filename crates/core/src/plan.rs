//! A plan: the ordered operations that bring the target in step, the objects rejected and why,
//! notes on changes deliberately held back, and a summary.
//!
//! The JSON form (what `scimsync reconcile --dry-run --format json` prints) has these stable
//! top-level fields: `operations` (each tagged by `op`), `rejected`, `notes`, `summary`.

use crate::ids::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Serde helper for `Option<Option<T>>`: absent = no change, `null` = clear, value = set.
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// The full set of attributes of a user to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAttributes {
    pub user_name: CompactString,
    pub external_id: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<CompactString>,
    /// Not sent when unmapped or empty: the target derives or invents one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<CompactString>,
    /// The work email.
    pub email: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_phone: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_id: Option<CompactString>,
    #[serde(default, skip_serializing_if = "crate::plan::is_default")]
    pub enterprise: crate::target::EnterpriseFields,
    /// The profile id (exactly one, when governance applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_sets: Vec<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CompactString>,
}

impl UserAttributes {
    /// Leaves the optional attribute `name` out of the creation (the target refused it);
    /// `false` when it is not optional (the creation cannot go without it).
    pub fn remove(&mut self, name: &str) -> bool {
        let e = &mut self.enterprise;
        let slot = match name {
            "name.givenName" => &mut self.given_name,
            "displayName" => &mut self.display_name,
            "nickName" => &mut self.nick_name,
            "title" => &mut self.title,
            "phoneNumbers" => &mut self.work_phone,
            "federationId" => &mut self.federation_id,
            "employeeNumber" => &mut e.employee_number,
            "department" => &mut e.department,
            "division" => &mut e.division,
            "organization" => &mut e.organization,
            "costCenter" => &mut e.cost_center,
            "manager" => &mut e.manager,
            "roles" => &mut self.role,
            _ => return false,
        };
        slot.take().is_some()
    }

    /// The creation as the changes that would give an empty account these attributes
    /// (entitlements: the profile and every permission set added).
    pub fn as_changes(&self) -> UserChanges {
        let mut all = UserChanges {
            user_name: Some(self.user_name.clone()),
            external_id: Some(self.external_id.clone()),
            family_name: self.family_name.as_ref().map(|v| Some(v.clone())),
            email: Some(self.email.clone()),
            entitlements: self.profile.as_ref().map(|p| EntitlementChange {
                profile: p.clone(),
                profile_changed: true,
                permission_sets: self.permission_sets.clone(),
                added: self.permission_sets.clone(),
                removed: Vec::new(),
            }),
            ..UserChanges::default()
        };
        for (_, change) in self.optional_writes() {
            all.merge(change);
        }
        all
    }

    /// The optional attributes set, by the names of [`USER_ATTRIBUTES`], with the change a
    /// later update of the same value would carry (so a refusal of one is held the same way
    /// for a creation and an update).
    pub fn optional_writes(&self) -> Vec<(&'static str, UserChanges)> {
        let e = &self.enterprise;
        let some = |v: &Option<CompactString>| v.as_ref().map(|v| Some(v.clone()));
        let all = UserChanges {
            given_name: some(&self.given_name),
            display_name: some(&self.display_name),
            nick_name: self.nick_name.clone(),
            title: some(&self.title),
            work_phone: some(&self.work_phone),
            federation_id: some(&self.federation_id),
            enterprise: EnterpriseChanges {
                employee_number: some(&e.employee_number),
                department: some(&e.department),
                division: some(&e.division),
                organization: some(&e.organization),
                cost_center: some(&e.cost_center),
                manager: some(&e.manager),
            },
            role: some(&self.role),
            ..UserChanges::default()
        };
        all.attribute_names()
            .into_iter()
            .map(|n| (n, all.only(n)))
            .collect()
    }
}

pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A change of entitlements, sent as one complete list (profile first, then permission sets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementChange {
    /// The profile the user ends with.
    pub profile: CompactString,
    /// Whether the profile itself changes.
    pub profile_changed: bool,
    /// Every permission set the user ends with (kept, added and untouched ones).
    pub permission_sets: Vec<CompactString>,
    /// Permission sets added by this change (the engine records them as its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<CompactString>,
    /// Permission sets removed by this change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<CompactString>,
}

/// Changed fields of the enterprise extension (absent: unchanged; `null`: clear).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseChanges {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub employee_number: Option<Option<CompactString>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub department: Option<Option<CompactString>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub division: Option<Option<CompactString>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub organization: Option<Option<CompactString>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub cost_center: Option<Option<CompactString>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub manager: Option<Option<CompactString>>,
}

/// Exactly the attributes of one user that change (absent: unchanged; `null`: clear).
/// All of them go to the target in one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<CompactString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub given_name: Option<Option<CompactString>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub family_name: Option<Option<CompactString>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub display_name: Option<Option<CompactString>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<CompactString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub title: Option<Option<CompactString>>,
    /// The new work email (the target may hold it pending verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<CompactString>,
    /// The one phone, type `work`; phones of other types on the account stay.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub work_phone: Option<Option<CompactString>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub federation_id: Option<Option<CompactString>>,
    #[serde(default, skip_serializing_if = "crate::plan::is_default")]
    pub enterprise: EnterpriseChanges,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlements: Option<EntitlementChange>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub role: Option<Option<CompactString>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// The names of a user's attributes as the plan, the refusal memory and discovery call them
/// (SCIM names; the extension fields by their short names; `federationId` for the SSO
/// identifier wherever the target keeps it).
pub const USER_ATTRIBUTES: [&str; 19] = [
    "userName",
    "externalId",
    "name.givenName",
    "name.familyName",
    "displayName",
    "nickName",
    "title",
    "emails",
    "phoneNumbers",
    "federationId",
    "employeeNumber",
    "department",
    "division",
    "organization",
    "costCenter",
    "manager",
    "entitlements",
    "roles",
    "active",
];

impl UserChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The change of attribute `name` (one of [`USER_ATTRIBUTES`]) alone.
    pub fn only(&self, name: &str) -> Self {
        let mut single = Self::default();
        single.move_from(&mut self.clone(), name);
        single
    }

    /// Takes the change of attribute `name` out of these changes.
    pub fn remove(&mut self, name: &str) {
        Self::default().move_from(self, name);
    }

    /// Moves the change of attribute `name` from `other` into `self`.
    fn move_from(&mut self, other: &mut Self, name: &str) {
        let (e, o) = (&mut self.enterprise, &mut other.enterprise);
        match name {
            "userName" => self.user_name = other.user_name.take(),
            "externalId" => self.external_id = other.external_id.take(),
            "name.givenName" => self.given_name = other.given_name.take(),
            "name.familyName" => self.family_name = other.family_name.take(),
            "displayName" => self.display_name = other.display_name.take(),
            "nickName" => self.nick_name = other.nick_name.take(),
            "title" => self.title = other.title.take(),
            "emails" => self.email = other.email.take(),
            "phoneNumbers" => self.work_phone = other.work_phone.take(),
            "federationId" => self.federation_id = other.federation_id.take(),
            "employeeNumber" => e.employee_number = o.employee_number.take(),
            "department" => e.department = o.department.take(),
            "division" => e.division = o.division.take(),
            "organization" => e.organization = o.organization.take(),
            "costCenter" => e.cost_center = o.cost_center.take(),
            "manager" => e.manager = o.manager.take(),
            "entitlements" | "profile" => self.entitlements = other.entitlements.take(),
            "roles" => self.role = other.role.take(),
            "active" => self.active = other.active.take(),
            _ => {}
        }
    }

    /// The new value of attribute `name` (`None`: cleared, or not changed); the profile for
    /// `entitlements`, `true`/`false` for `active`.
    pub fn value_of(&self, name: &str) -> Option<CompactString> {
        let e = &self.enterprise;
        let cleared = |v: &Option<Option<CompactString>>| v.clone().flatten();
        match name {
            "userName" => self.user_name.clone(),
            "externalId" => self.external_id.clone(),
            "name.givenName" => cleared(&self.given_name),
            "name.familyName" => cleared(&self.family_name),
            "displayName" => cleared(&self.display_name),
            "nickName" => self.nick_name.clone(),
            "title" => cleared(&self.title),
            "emails" => self.email.clone(),
            "phoneNumbers" => cleared(&self.work_phone),
            "federationId" => cleared(&self.federation_id),
            "employeeNumber" => cleared(&e.employee_number),
            "department" => cleared(&e.department),
            "division" => cleared(&e.division),
            "organization" => cleared(&e.organization),
            "costCenter" => cleared(&e.cost_center),
            "manager" => cleared(&e.manager),
            "entitlements" | "profile" => self.entitlements.as_ref().map(|c| c.profile.clone()),
            "roles" => cleared(&self.role),
            "active" => self.active.map(|a| if a { "true" } else { "false" }.into()),
            _ => None,
        }
    }

    /// Adds the changes of `other` (attributes it leaves unchanged stay as they are).
    pub fn merge(&mut self, mut other: Self) {
        for name in other.attribute_names() {
            self.move_from(&mut other, name);
        }
    }

    /// The SCIM names of the attributes that change, in a fixed order.
    pub fn attribute_names(&self) -> Vec<&'static str> {
        let e = &self.enterprise;
        [
            ("userName", self.user_name.is_some()),
            ("externalId", self.external_id.is_some()),
            ("name.givenName", self.given_name.is_some()),
            ("name.familyName", self.family_name.is_some()),
            ("displayName", self.display_name.is_some()),
            ("nickName", self.nick_name.is_some()),
            ("title", self.title.is_some()),
            ("emails", self.email.is_some()),
            ("phoneNumbers", self.work_phone.is_some()),
            ("federationId", self.federation_id.is_some()),
            ("employeeNumber", e.employee_number.is_some()),
            ("department", e.department.is_some()),
            ("division", e.division.is_some()),
            ("organization", e.organization.is_some()),
            ("costCenter", e.cost_center.is_some()),
            ("manager", e.manager.is_some()),
            ("entitlements", self.entitlements.is_some()),
            ("roles", self.role.is_some()),
            ("active", self.active.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }
}

/// How an existing target account was matched to a source user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    ExternalId,
    UserName,
    /// Groups: by display name, case-insensitively.
    Name,
}

/// Why a user is deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeactivationReason {
    /// The user is no longer in the source directory.
    LeftDirectory,
    /// The user is in the directory but no longer in scope.
    OutOfScope,
    /// The source status is `disabled`.
    Disabled,
    /// The source status is `pending deletion`.
    PendingDeletion,
}

/// A user named by an operation: by target id when it exists, by source id when it is created
/// earlier in the same plan (the engine resolves it through the links).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<SourceUserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<TargetUserId>,
    /// The userName, for people reading the plan.
    pub user_name: CompactString,
}

/// A group named by an operation (target id `None` when it is created earlier in the plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub source_id: SourceGroupId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<TargetGroupId>,
    pub name: CompactString,
}

/// One step of a plan. The order of a plan's operations is an order they may be applied in:
/// an object exists before anything refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    CreateUser {
        source_id: SourceUserId,
        attributes: UserAttributes,
    },
    /// Take ownership of an existing account; no request to the target.
    AdoptUser {
        source_id: SourceUserId,
        target_id: TargetUserId,
        user_name: CompactString,
        matched_by: MatchedBy,
    },
    UpdateUser {
        source_id: SourceUserId,
        target_id: TargetUserId,
        user_name: CompactString,
        changes: UserChanges,
    },
    /// `changes.active` is `Some(true)`; other changes travel in the same request.
    ReactivateUser {
        source_id: SourceUserId,
        target_id: TargetUserId,
        user_name: CompactString,
        changes: UserChanges,
    },
    DeactivateUser {
        source_id: SourceUserId,
        target_id: TargetUserId,
        user_name: CompactString,
        reason: DeactivationReason,
    },
    CreateGroup {
        source_id: SourceGroupId,
        name: CompactString,
    },
    /// Take ownership of an existing group of the same name; no request to the target.
    AdoptGroup {
        source_id: SourceGroupId,
        target_id: TargetGroupId,
        name: CompactString,
    },
    RenameGroup {
        source_id: SourceGroupId,
        target_id: TargetGroupId,
        from: CompactString,
        to: CompactString,
    },
    AddMembers {
        group: GroupRef,
        members: Vec<UserRef>,
    },
    RemoveMembers {
        group: GroupRef,
        members: Vec<UserRef>,
    },
}

impl Operation {
    /// The operation's kind as it appears in JSON and in the activity log (`create_user`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CreateUser { .. } => "create_user",
            Self::AdoptUser { .. } => "adopt_user",
            Self::UpdateUser { .. } => "update_user",
            Self::ReactivateUser { .. } => "reactivate_user",
            Self::DeactivateUser { .. } => "deactivate_user",
            Self::CreateGroup { .. } => "create_group",
            Self::AdoptGroup { .. } => "adopt_group",
            Self::RenameGroup { .. } => "rename_group",
            Self::AddMembers { .. } => "add_members",
            Self::RemoveMembers { .. } => "remove_members",
        }
    }

    /// The step of the apply order this operation belongs to. A plan lists its operations in
    /// an order they may be applied in; consecutive operations of one stage are independent
    /// of each other (the engine runs them concurrently), and a stage starts when the one
    /// before it is done: groups, then users, then updates (and the creations a rename frees,
    /// as a stage of their own after the updates), renames of groups, membership removals,
    /// membership additions, deactivations.
    pub fn stage(&self) -> u8 {
        match self {
            Self::CreateGroup { .. } | Self::AdoptGroup { .. } => 0,
            Self::CreateUser { .. } | Self::AdoptUser { .. } => 1,
            Self::UpdateUser { .. } | Self::ReactivateUser { .. } => 2,
            Self::RenameGroup { .. } => 3,
            Self::RemoveMembers { .. } => 4,
            Self::AddMembers { .. } => 5,
            Self::DeactivateUser { .. } => 6,
        }
    }

    /// What the operation does, in one line for people (the activity log's detail).
    pub fn describe(&self) -> String {
        self.describe_with(&crate::render::Labels::default())
    }

    /// [`Operation::describe`] with catalogue entries named as people configured them (the
    /// details of [`crate::render::details`] without a decision).
    pub fn describe_with(&self, labels: &crate::render::Labels) -> String {
        crate::render::details(self, labels, None)
    }

    /// Whether this operation takes something away (deactivation, membership removal): what the
    /// guard may hold back.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Self::DeactivateUser { .. } | Self::RemoveMembers { .. }
        )
    }
}

/// The kind of object a rejection or note is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    User,
    Group,
    /// The connection as a whole (its mapping, its target).
    Connection,
}

impl ObjectKind {
    /// The name in the activity log and the store (`user`, `group`, `connection`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Connection => "connection",
        }
    }
}

/// An object the planner will not provision, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub object: ObjectKind,
    /// The source id.
    pub source_id: String,
    /// The username or group name, for people.
    pub name: String,
    /// The offending attribute (`userName`, `nickName`, `displayName`, …).
    pub field: String,
    /// What is wrong and what to do about it.
    pub reason: String,
}

/// Why a change was deliberately not planned this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// The email change was sent and awaits verification; it is not sent again.
    EmailPendingVerification,
    /// The target refused this change before and nothing relevant has changed since.
    RefusedEarlier,
    /// The user's profile does not allow group membership.
    ProfileForbidsGroups,
    /// A target account has the user's userName but another externalId: not adopted.
    Conflict,
    /// The mapping asks for attributes the target does not declare: they are not sent.
    NotDeclared,
    /// The account's user is gone from the directory, but the directory also returned records
    /// without a usable id (one may be this user's): not deactivated this run.
    SourceUnidentified,
    /// The user lists a group id the directory's groups do not contain: that membership is
    /// ignored (it can neither scope the user nor choose a rule).
    UnknownGroup,
    /// The source reader found something wrong with this record (a duplicate id or email).
    SourceProblem,
}

/// A change held back on purpose, reported so nobody wonders why it did not happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub kind: NoteKind,
    pub object: ObjectKind,
    pub source_id: String,
    pub name: String,
    pub message: String,
}

/// Counts that describe a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub source_users: usize,
    pub source_groups: usize,
    /// Users in scope and enabled: those who should hold an active account.
    pub users_in_scope: usize,
    pub groups_in_scope: usize,
    pub target_users: usize,
    /// Active target users the engine owns before this plan (the base of the deactivation
    /// percentage).
    pub managed_active_users: usize,
    pub create_user: usize,
    pub adopt_user: usize,
    pub update_user: usize,
    pub reactivate_user: usize,
    pub deactivate_user: usize,
    pub create_group: usize,
    pub adopt_group: usize,
    pub rename_group: usize,
    /// Members added, over all batches.
    pub members_added: usize,
    pub members_removed: usize,
    pub rejected: usize,
    pub notes: usize,
    /// Writes the target refused before and that are not sent again (nothing relevant changed).
    #[serde(default)]
    pub held: usize,
    /// Managed users needing no change.
    pub unchanged_users: usize,
}

impl Summary {
    /// Adds the counts of `other` to these (the summaries of shares of one plan).
    pub fn add(&mut self, other: &Summary) {
        let Summary {
            source_users,
            source_groups,
            users_in_scope,
            groups_in_scope,
            target_users,
            managed_active_users,
            create_user,
            adopt_user,
            update_user,
            reactivate_user,
            deactivate_user,
            create_group,
            adopt_group,
            rename_group,
            members_added,
            members_removed,
            rejected,
            notes,
            held,
            unchanged_users,
        } = other;
        for (mine, theirs) in [
            (&mut self.source_users, source_users),
            (&mut self.source_groups, source_groups),
            (&mut self.users_in_scope, users_in_scope),
            (&mut self.groups_in_scope, groups_in_scope),
            (&mut self.target_users, target_users),
            (&mut self.managed_active_users, managed_active_users),
            (&mut self.create_user, create_user),
            (&mut self.adopt_user, adopt_user),
            (&mut self.update_user, update_user),
            (&mut self.reactivate_user, reactivate_user),
            (&mut self.deactivate_user, deactivate_user),
            (&mut self.create_group, create_group),
            (&mut self.adopt_group, adopt_group),
            (&mut self.rename_group, rename_group),
            (&mut self.members_added, members_added),
            (&mut self.members_removed, members_removed),
            (&mut self.rejected, rejected),
            (&mut self.notes, notes),
            (&mut self.held, held),
            (&mut self.unchanged_users, unchanged_users),
        ] {
            *mine += theirs;
        }
    }
}

/// Why the planner did what it did with one source user: the one record the single-user
/// trace and the explanations are views of (nothing re-derives scope, matching or rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub source_id: SourceUserId,
    /// The userName the mapping gives (with the configured suffix), else the source username.
    pub user_name: String,
    /// Whether the user is in scope.
    pub in_scope: bool,
    /// The provisioned groups that put the user in scope (empty when every user is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope_groups: Vec<SourceGroupId>,
    /// Whether the source status keeps an account active.
    pub enabled: bool,
    pub account: AccountDecision,
    /// The governance rule that applies, when governance is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleDecision>,
    /// How missing names were derived, when they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<String>,
    /// The profile the account ends with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Whether the user should be in its provisioned groups (not when unwanted, rejected, or
    /// its profile forbids groups).
    pub member: bool,
    /// Whether the user is rejected (the reasons are in [`Plan::rejected`]).
    pub rejected: bool,
    /// Each attribute the user's creation or update sets: where the value comes from and what
    /// the target had (what the explanations show as `attribute: old → new ← source`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeWhy>,
    /// For a user deactivated out of scope: the scope groups the account is still a member of
    /// on the target but the user has left in the source (what changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_groups: Vec<SourceGroupId>,
}

/// One attribute a planned operation sets, and why it has that value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeWhy {
    /// The target attribute (`emails[work].value`, `name.familyName`, `profile`, …).
    pub attribute: String,
    /// Where the value comes from: the source attribute by Duo's name (`email`,
    /// `realname (last word)`, `email + suffix ".acme"`), or `rule` for entitlements and roles
    /// (the rule is [`Decision::rule`]).
    pub from: String,
    /// What the target had (absent on a creation, or when the account had nothing). Catalogue
    /// ids for `profile`, `permissionSets` (`, `-separated) and `roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// What it gets (absent: cleared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// Which target account a source user has, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum AccountDecision {
    /// Linked by an earlier run.
    Linked {
        target_id: TargetUserId,
        user_name: CompactString,
        active: bool,
        origin: crate::links::Origin,
    },
    /// An existing account adopted in this plan.
    Adopted {
        target_id: TargetUserId,
        user_name: CompactString,
        matched_by: MatchedBy,
    },
    /// An account is created.
    Create,
    /// An account is created once an update of this plan frees the userName.
    CreateAfterRename,
    /// No account is made or changed (not wanted, or rejected).
    None,
}

/// The governance rule a user gets, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDecision {
    /// `None`: the baseline; else the group rule of this priority, through `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<SourceGroupId>,
    /// Catalogue ids.
    pub profile: CompactString,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_sets: Vec<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CompactString>,
}

/// Whose decisions a plan records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Explain {
    /// Nobody's (the default: a plan of a million users stays small).
    #[default]
    Nobody,
    /// One source user's.
    User(SourceUserId),
    /// Everyone's.
    Everyone,
    /// Those of the users the plan changes (an operation on their account or a membership):
    /// what a real run records its activity entries from, bounded by the changes.
    Changed,
}

impl Explain {
    /// Whether the decision of `id` is recorded; for [`Explain::Changed`], whether the user
    /// is among `changed`.
    pub fn covers(&self, id: &SourceUserId) -> bool {
        match self {
            Self::Nobody => false,
            Self::User(u) => u == id,
            Self::Everyone | Self::Changed => true,
        }
    }
}

/// The output of the planner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub operations: Vec<Operation>,
    pub rejected: Vec<Rejection>,
    pub notes: Vec<Note>,
    pub summary: Summary,
    /// The decisions asked for ([`Explain`]), by source id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
}

impl Plan {
    /// Whether applying this plan would send anything to the target.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}
