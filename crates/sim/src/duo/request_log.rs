//! What the emulator was asked, for tests to assert on (paging, retries, signing).

use std::time::SystemTime;

use super::SignatureScheme;

/// One request the emulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// Path without the query, e.g. `/admin/v1/users`.
    pub path: String,
    /// The raw query string as sent (may be empty).
    pub query: String,
    /// HTTP status answered.
    pub status: u16,
    /// The scheme the request was validly signed with; `None` when its credentials were
    /// refused (or never checked).
    pub signature: Option<SignatureScheme>,
    /// When the request arrived.
    pub at: SystemTime,
}

impl LoggedRequest {
    /// The value of a query parameter (first occurrence, form-decoded).
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}
