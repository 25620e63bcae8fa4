//! The file source: the core's `SourceSnapshot` as JSON, for demos, imports and tests.
//!
//! The format is serde's form of [`SourceSnapshot`]:
//!
//! ```json
//! {
//!   "users": [{"id": "DU1", "username": "ada", "email": "ada@example.com",
//!              "first_name": "Ada", "last_name": "Lovelace", "display_name": "Ada Lovelace",
//!              "status": "active", "phones": [{"number": "+15555550100", "kind": "mobile"}],
//!              "aliases": ["ada.l"], "custom": {"department": "R&D"}, "groups": ["DG1"]}],
//!   "groups": [{"id": "DG1", "name": "Engineering", "description": "optional"}],
//!   "sso_access": {"kind": "groups", "groups": ["DG1"]}
//! }
//! ```
//!
//! `status` is one of `active`, `bypass`, `disabled`, `locked_out`, `pending_deletion`. A user
//! record that cannot be read is reported (with its index and field) and listed as
//! unreadable, so its account is left alone; the rest of the file is read.

use crate::error::DirectoryError;
use scimsync_core::SourceUserId;
use scimsync_core::plan::ObjectKind;
use scimsync_core::ports::Source;
use scimsync_core::source::{
    DirectoryGroup, DirectoryUser, SourceProblem, SourceSnapshot, SsoAccess,
};
use serde::Deserialize;
use std::path::PathBuf;
use tracing::warn;

/// Reads a directory from a JSON file.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    allow_empty: bool,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    users: Vec<serde_json::Value>,
    #[serde(default)]
    groups: Vec<DirectoryGroup>,
    #[serde(default)]
    sso_access: Option<SsoAccess>,
}

impl FileSource {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            allow_empty: false,
        }
    }

    /// Accept a file with no users.
    pub fn allow_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
    }

    /// Reads and reports unreadable records: `(snapshot, problems)`.
    pub fn load(&self) -> Result<(SourceSnapshot, Vec<String>), DirectoryError> {
        let path = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|source| DirectoryError::File {
            path: path.clone(),
            source,
        })?;
        let raw: RawFile = serde_json::from_str(&text).map_err(|e| DirectoryError::FileFormat {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut snapshot = SourceSnapshot {
            groups: raw.groups,
            sso_access: raw.sso_access,
            ..SourceSnapshot::default()
        };
        let mut problems = Vec::new();
        // Index of each id's first record, to report (and set apart) duplicates.
        let mut first_at: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        let mut duplicated: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let mut emails: std::collections::HashMap<String, (usize, String)> =
            std::collections::HashMap::new();
        for (i, value) in raw.users.into_iter().enumerate() {
            let id = value
                .get("id")
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            let Some(id) = id else {
                let who = value
                    .get("username")
                    .and_then(|v| v.as_str())
                    .map(|u| format!(" (username {u:?})"))
                    .unwrap_or_default();
                let problem = format!(
                    "{path}: users[{i}]{who}: no usable id; no account is deactivated while such a record is in the file"
                );
                warn!(%problem, "A user record has no id.");
                problems.push(problem);
                snapshot.unidentified.push(format!("users[{i}]{who}"));
                continue;
            };
            if let Some(first) = first_at.get(&id) {
                let problem = format!(
                    "{path}: users[{i}] ({id}): the id of users[{first}] again; both are set apart and the account is left as it is"
                );
                warn!(%problem, "Duplicate user id.");
                problems.push(problem);
                snapshot.problems.push(SourceProblem {
                    object: ObjectKind::User,
                    name: username_of(&value),
                    message: format!(
                        "users[{i}] has the id of users[{first}]; both are set apart and the account is left as it is"
                    ),
                    source_id: id.clone(),
                });
                duplicated.insert(id);
                continue;
            }
            first_at.insert(id.clone(), i);
            match serde_json::from_value::<DirectoryUser>(value) {
                Ok(u) => {
                    if let Some(email) = &u.email {
                        let key = email.trim().to_lowercase();
                        if let Some((j, other)) = emails.get(&key) {
                            let problem = format!(
                                "{path}: users[{i}] ({id}): email {email:?} is also that of users[{j}] ({other})"
                            );
                            warn!(%problem, "Duplicate email.");
                            problems.push(problem);
                            snapshot.problems.push(SourceProblem {
                                object: ObjectKind::User,
                                source_id: id.clone(),
                                name: u.username.to_string(),
                                message: format!(
                                    "email {email:?} is also that of users[{j}] ({other})"
                                ),
                            });
                        } else {
                            emails.insert(key, (i, id.clone()));
                        }
                    }
                    snapshot.users.push(u);
                }
                Err(e) => {
                    let problem = format!("{path}: users[{i}] ({id}): {e}");
                    warn!(%problem, "A user record is unreadable; its account is left as it is.");
                    problems.push(problem);
                    snapshot.unreadable.push(SourceUserId::from(id));
                }
            }
        }
        if !duplicated.is_empty() {
            snapshot
                .users
                .retain(|u| !duplicated.contains(u.id.as_str()));
            snapshot
                .unreadable
                .extend(duplicated.into_iter().map(SourceUserId::from));
        }
        Ok((snapshot, problems))
    }
}

/// A record's username, when it has one as text.
fn username_of(value: &serde_json::Value) -> String {
    value
        .get("username")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

impl Source for FileSource {
    type Error = DirectoryError;

    async fn read(&self) -> Result<SourceSnapshot, DirectoryError> {
        let (snapshot, _) = self.load()?;
        if snapshot.users.is_empty()
            && snapshot.unreadable.is_empty()
            && snapshot.unidentified.is_empty()
            && !self.allow_empty
        {
            return Err(DirectoryError::Empty);
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_record_is_reported_with_its_index_and_field_and_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.json");
        std::fs::write(
            &path,
            r#"{"users": [
                {"id": "DU1", "username": "ada", "email": "ada@example.com", "status": "active", "groups": ["DG1"]},
                {"id": "DU2", "username": "bob", "status": "enabledd"}
            ], "groups": [{"id": "DG1", "name": "Eng"}]}"#,
        )
        .unwrap();
        let (snapshot, problems) = FileSource::new(&path).load().unwrap();
        assert_eq!(snapshot.users.len(), 1);
        assert_eq!(snapshot.unreadable, vec![SourceUserId::from("DU2")]);
        assert!(
            problems[0].contains("users[1] (DU2)") && problems[0].contains("enabledd"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn records_without_ids_duplicate_ids_and_emails_are_reported_per_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.json");
        std::fs::write(
            &path,
            r#"{"users": [
                {"id": "DU1", "username": "ada", "email": "ada@example.com", "status": "active"},
                {"username": "noid", "email": "noid@example.com", "status": "active"},
                {"id": "  ", "username": "blank", "status": "active"},
                {"id": "DU2", "username": "bob", "email": "bob@example.com", "status": "active"},
                {"id": "DU2", "username": "bob2", "email": "bob2@example.com", "status": "active"},
                {"id": "DU3", "username": "cy", "email": "ADA@example.com", "status": "active"}
            ], "groups": []}"#,
        )
        .unwrap();
        let (snapshot, problems) = FileSource::new(&path).load().unwrap();
        let ids: Vec<&str> = snapshot.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["DU1", "DU3"], "duplicates set apart");
        assert_eq!(snapshot.unreadable, vec![SourceUserId::from("DU2")]);
        assert_eq!(
            snapshot.unidentified,
            [
                "users[1] (username \"noid\")",
                "users[2] (username \"blank\")"
            ]
        );
        let all = problems.join("\n");
        assert!(
            all.contains("users[4] (DU2): the id of users[3] again"),
            "{all}"
        );
        assert!(
            all.contains(
                "users[5] (DU3): email \"ADA@example.com\" is also that of users[0] (DU1)"
            ),
            "{all}"
        );
        assert_eq!(problems.len(), 4, "{all}");
        // The same duplicates travel with the snapshot, one per object, for the plan's notes.
        let per_object: Vec<(&str, &str)> = snapshot
            .problems
            .iter()
            .map(|p| (p.source_id.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(per_object.len(), 2, "{per_object:?}");
        assert_eq!(per_object[0].0, "DU2");
        assert!(per_object[0].1.contains("users[4] has the id of users[3]"));
        assert_eq!(per_object[1].0, "DU3");
        assert!(per_object[1].1.contains("also that of users[0] (DU1)"));
    }
}
