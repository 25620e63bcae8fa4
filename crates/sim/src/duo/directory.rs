//! The dataset the emulator serves, indexed for paging without copying, and
//! [`DatasetHandle`], which edits it live.

use std::collections::HashMap;
use std::sync::Arc;

use crate::generator::{DuoDataset, DuoGroup, DuoUser, MAX_GROUPS_PER_USER};

use super::Shared;

/// The served dataset plus lookup indexes, rebuilt after every edit.
#[derive(Debug)]
pub(crate) struct Directory {
    pub(crate) data: DuoDataset,
    users_by_id: HashMap<String, usize>,
    groups_by_id: HashMap<String, usize>,
    /// Group id to member user positions, in user order.
    members: HashMap<String, Vec<usize>>,
}

impl Directory {
    pub(crate) fn new(data: DuoDataset) -> Self {
        let mut directory = Self {
            data,
            users_by_id: HashMap::new(),
            groups_by_id: HashMap::new(),
            members: HashMap::new(),
        };
        directory.reindex();
        directory
    }

    pub(crate) fn reindex(&mut self) {
        self.users_by_id = self
            .data
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.user_id.clone(), i))
            .collect();
        self.groups_by_id = self
            .data
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.group_id.clone(), i))
            .collect();
        let mut members: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, user) in self.data.users.iter().enumerate() {
            for group in &user.groups {
                members.entry(group.clone()).or_default().push(i);
            }
        }
        self.members = members;
    }

    pub(crate) fn user(&self, user_id: &str) -> Option<&DuoUser> {
        self.users_by_id.get(user_id).map(|&i| &self.data.users[i])
    }

    pub(crate) fn group(&self, group_id: &str) -> Option<&DuoGroup> {
        self.groups_by_id
            .get(group_id)
            .map(|&i| &self.data.groups[i])
    }

    /// Positions (in `data.users`) of the group's members.
    pub(crate) fn members(&self, group_id: &str) -> &[usize] {
        self.members.get(group_id).map_or(&[], Vec::as_slice)
    }
}

/// An edit of the served dataset was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditDatasetError {
    #[error("no Duo user has id {user_id:?}")]
    UnknownUser { user_id: String },
    #[error("no Duo group has id {group_id:?}")]
    UnknownGroup { group_id: String },
    #[error("a Duo user with id {user_id:?} already exists")]
    DuplicateUser { user_id: String },
    #[error("a Duo group with id {group_id:?} already exists")]
    DuplicateGroup { group_id: String },
    #[error("Duo user {user_id:?} is already in {MAX_GROUPS_PER_USER} groups, Duo's limit")]
    TooManyGroups { user_id: String },
}

/// Live access to the dataset a running [`DuoSim`](super::DuoSim) serves: every edit is seen
/// by the next request. Cheap to clone.
#[derive(Clone)]
pub struct DatasetHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for DatasetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetHandle").finish_non_exhaustive()
    }
}

impl DatasetHandle {
    /// A copy of the whole dataset as served now.
    pub fn snapshot(&self) -> DuoDataset {
        self.shared.read_directory().data.clone()
    }

    /// A copy of one user.
    pub fn user(&self, user_id: &str) -> Option<DuoUser> {
        self.shared.read_directory().user(user_id).cloned()
    }

    /// Number of users served.
    pub fn user_count(&self) -> usize {
        self.shared.read_directory().data.users.len()
    }

    /// Runs any edit on the dataset (indexes are rebuilt afterwards).
    pub fn edit<R>(&self, change: impl FnOnce(&mut DuoDataset) -> R) -> R {
        let mut directory = self.shared.write_directory();
        let out = change(&mut directory.data);
        directory.reindex();
        out
    }

    fn try_edit(
        &self,
        change: impl FnOnce(&mut DuoDataset) -> Result<(), EditDatasetError>,
    ) -> Result<(), EditDatasetError> {
        self.edit(change)
    }

    /// Changes a user's username.
    pub fn rename_user(&self, user_id: &str, username: &str) -> Result<(), EditDatasetError> {
        self.try_edit(|d| {
            user_mut(d, user_id)?.username = username.to_owned();
            Ok(())
        })
    }

    /// Changes a user's first, last and real name.
    pub fn set_user_names(
        &self,
        user_id: &str,
        firstname: &str,
        lastname: &str,
    ) -> Result<(), EditDatasetError> {
        self.try_edit(|d| {
            let user = user_mut(d, user_id)?;
            user.firstname = firstname.to_owned();
            user.lastname = lastname.to_owned();
            user.realname = format!("{firstname} {lastname}");
            Ok(())
        })
    }

    /// Changes a user's email.
    pub fn set_user_email(&self, user_id: &str, email: &str) -> Result<(), EditDatasetError> {
        self.try_edit(|d| {
            user_mut(d, user_id)?.email = email.to_owned();
            Ok(())
        })
    }

    /// Changes a user's status (Duo spelling: `active`, `bypass`, `disabled`, `locked out`,
    /// `pending deletion`).
    pub fn set_user_status(&self, user_id: &str, status: &str) -> Result<(), EditDatasetError> {
        self.try_edit(|d| {
            user_mut(d, user_id)?.status = status.to_owned();
            Ok(())
        })
    }

    /// Disables a user (`status = "disabled"`).
    pub fn disable_user(&self, user_id: &str) -> Result<(), EditDatasetError> {
        self.set_user_status(user_id, "disabled")
    }

    /// Adds a user at `position` in list order (clamped to the end); inserting at 0 shifts
    /// every offset, as a user created mid-read would.
    pub fn insert_user(&self, position: usize, user: DuoUser) -> Result<(), EditDatasetError> {
        self.try_edit(|d| insert_user(d, position, user))
    }

    /// Adds a user at the end of the list.
    pub fn add_user(&self, user: DuoUser) -> Result<(), EditDatasetError> {
        self.try_edit(|d| {
            let end = d.users.len();
            insert_user(d, end, user)
        })
    }

    /// Removes a user (as a Duo delete does).
    pub fn remove_user(&self, user_id: &str) -> Result<DuoUser, EditDatasetError> {
        self.edit(|d| {
            let at = d
                .users
                .iter()
                .position(|u| u.user_id == user_id)
                .ok_or_else(|| EditDatasetError::UnknownUser {
                    user_id: user_id.to_owned(),
                })?;
            Ok(d.users.remove(at))
        })
    }

    /// Puts a user in a group (no-op when already a member).
    pub fn add_user_to_group(&self, user_id: &str, group_id: &str) -> Result<(), EditDatasetError> {
        self.try_edit(|d| {
            group_index(d, group_id)?;
            let user = user_mut(d, user_id)?;
            if user.groups.iter().any(|g| g == group_id) {
                return Ok(());
            }
            if user.groups.len() >= MAX_GROUPS_PER_USER {
                return Err(EditDatasetError::TooManyGroups {
                    user_id: user_id.to_owned(),
                });
            }
            user.groups.push(group_id.to_owned());
            Ok(())
        })
    }

    /// Takes a user out of a group (no-op when not a member).
    pub fn remove_user_from_group(
        &self,
        user_id: &str,
        group_id: &str,
    ) -> Result<(), EditDatasetError> {
        self.try_edit(|d| {
            user_mut(d, user_id)?.groups.retain(|g| g != group_id);
            Ok(())
        })
    }

    /// Moves a user from one group to another.
    pub fn move_user(&self, user_id: &str, from: &str, to: &str) -> Result<(), EditDatasetError> {
        self.remove_user_from_group(user_id, from)?;
        self.add_user_to_group(user_id, to)
    }

    /// Renames a group.
    pub fn rename_group(&self, group_id: &str, name: &str) -> Result<(), EditDatasetError> {
        self.try_edit(|d| {
            let at = group_index(d, group_id)?;
            d.groups[at].name = name.to_owned();
            Ok(())
        })
    }

    /// Adds a group at the end of the list.
    pub fn add_group(&self, group: DuoGroup) -> Result<(), EditDatasetError> {
        self.try_edit(|d| {
            if d.groups.iter().any(|g| g.group_id == group.group_id) {
                return Err(EditDatasetError::DuplicateGroup {
                    group_id: group.group_id,
                });
            }
            d.groups.push(group);
            Ok(())
        })
    }

    /// Deletes a group and every membership in it.
    pub fn remove_group(&self, group_id: &str) -> Result<DuoGroup, EditDatasetError> {
        self.edit(|d| {
            let at = group_index(d, group_id)?;
            for user in &mut d.users {
                user.groups.retain(|g| g != group_id);
            }
            Ok(d.groups.remove(at))
        })
    }
}

fn user_mut<'a>(d: &'a mut DuoDataset, user_id: &str) -> Result<&'a mut DuoUser, EditDatasetError> {
    d.users
        .iter_mut()
        .find(|u| u.user_id == user_id)
        .ok_or_else(|| EditDatasetError::UnknownUser {
            user_id: user_id.to_owned(),
        })
}

fn group_index(d: &DuoDataset, group_id: &str) -> Result<usize, EditDatasetError> {
    d.groups
        .iter()
        .position(|g| g.group_id == group_id)
        .ok_or_else(|| EditDatasetError::UnknownGroup {
            group_id: group_id.to_owned(),
        })
}

fn insert_user(d: &mut DuoDataset, position: usize, user: DuoUser) -> Result<(), EditDatasetError> {
    if d.users.iter().any(|u| u.user_id == user.user_id) {
        return Err(EditDatasetError::DuplicateUser {
            user_id: user.user_id,
        });
    }
    let at = position.min(d.users.len());
    d.users.insert(at, user);
    Ok(())
}
