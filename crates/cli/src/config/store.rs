//! The `[store]` section: where runs, links and the activity log are kept.

use std::path::Path;

/// Default store: a SQLite file beside the working directory.
pub const DEFAULT_STORE_URL: &str = "sqlite://scimsync.db";

/// The store URL: `SCIMSYNC_STORE_URL` as given, else the file's (or the default), whose
/// relative SQLite path is resolved against the configuration file's folder.
pub(super) fn store_url(
    env: &dyn Fn(&str) -> Option<String>,
    from_file: Option<String>,
    base_dir: &Path,
) -> String {
    env("SCIMSYNC_STORE_URL").unwrap_or_else(|| {
        let url = from_file.unwrap_or_else(|| DEFAULT_STORE_URL.to_owned());
        scimsync_store::resolve_sqlite_path(&url, base_dir)
    })
}
