//! The file format as `README.md` documents it is the format `FileSource` reads.
#![allow(clippy::unwrap_used)]

use scimsync_core::ports::Source as _;
use scimsync_core::source::{DirectoryStatus, PhoneKind, SsoAccess};
use scimsync_directory::FileSource;

/// The first ```json block of the crate's README.
fn readme_example() -> String {
    let readme = include_str!("../README.md");
    let start = readme.find("```json\n").unwrap() + "```json\n".len();
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].to_owned()
}

#[tokio::test]
async fn the_documented_example_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.json");
    std::fs::write(&path, readme_example()).unwrap();
    let snapshot = FileSource::new(&path).read().await.unwrap();
    let ada = &snapshot.users[0];
    assert_eq!(ada.username, "ada");
    assert_eq!(ada.status, DirectoryStatus::Active);
    assert_eq!(ada.phones[0].kind, PhoneKind::Mobile);
    assert_eq!(ada.phones[0].extension.as_deref(), Some("12"));
    assert_eq!(ada.custom.get("department"), Some("R&D"));
    assert_eq!(snapshot.groups[0].name, "Engineering");
    assert!(matches!(snapshot.sso_access, Some(SsoAccess::Groups(ref g)) if g.len() == 1));
}

#[tokio::test]
async fn the_minimal_forms_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.json");
    std::fs::write(
        &path,
        r#"{"users": [{"id": "DU1", "username": "ada", "status": "locked_out"}],
            "sso_access": {"kind": "all_users"}}"#,
    )
    .unwrap();
    let snapshot = FileSource::new(&path).read().await.unwrap();
    assert_eq!(snapshot.users[0].status, DirectoryStatus::LockedOut);
    assert!(snapshot.groups.is_empty());
    assert_eq!(snapshot.sso_access, Some(SsoAccess::AllUsers));
}

#[tokio::test]
async fn a_missing_file_names_the_path() {
    let err = FileSource::new("/nonexistent/scimsync/directory.json")
        .read()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/scimsync/directory.json"),
        "{err}"
    );
}
