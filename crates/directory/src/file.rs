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
use scimsync_core::ports::Source;
use scimsync_core::source::{DirectoryGroup, DirectoryUser, SourceSnapshot, SsoAccess};
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
        for (i, value) in raw.users.into_iter().enumerate() {
            let id = value.get("id").and_then(|v| v.as_str()).map(str::to_owned);
            match serde_json::from_value::<DirectoryUser>(value) {
                Ok(u) => snapshot.users.push(u),
                Err(e) => {
                    let problem = format!(
                        "{path}: users[{i}]{}: {e}",
                        id.as_deref().map(|i| format!(" ({i})")).unwrap_or_default()
                    );
                    warn!(%problem, "A user record is unreadable; its account is left as it is.");
                    problems.push(problem);
                    if let Some(id) = id {
                        snapshot.unreadable.push(SourceUserId::from(id));
                    }
                }
            }
        }
        Ok((snapshot, problems))
    }
}

impl Source for FileSource {
    type Error = DirectoryError;

    async fn read(&self) -> Result<SourceSnapshot, DirectoryError> {
        let (snapshot, _) = self.load()?;
        if snapshot.users.is_empty() && snapshot.unreadable.is_empty() && !self.allow_empty {
            return Err(DirectoryError::Empty);
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
}
