//! The `[store]` section: where runs, links and the activity log are kept.

use std::path::Path;
use std::time::Duration;

/// Default store: a SQLite file beside the working directory.
pub const DEFAULT_STORE_URL: &str = "sqlite://scimsync.db";
/// Default retention of the activity log and runs (`store.retention`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 86_400);
/// The shortest retention accepted: a typo such as `90s` must not empty the log.
pub const MIN_RETENTION: Duration = Duration::from_secs(86_400);

/// `store.retention`: a duration of at least a day (`90d`, `2160h`), or `off` (`None`, kept
/// for ever); default 90 days.
pub(super) fn retention(text: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(text) = text else {
        return Ok(Some(DEFAULT_RETENTION));
    };
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let d = crate::parse_duration(text)
        .map_err(|e| format!("{e}, such as \"90d\"; or \"off\" to keep everything"))?;
    if d < MIN_RETENTION {
        return Err(format!(
            "{text:?} is shorter than a day; use days such as \"90d\", or \"off\" to keep everything"
        ));
    }
    Ok(Some(d))
}

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
