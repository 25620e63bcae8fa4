//! Errors of the source readers.

use scimsync_core::ports::{Classify, Disposition};

/// A failed read of the source directory.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(
        "Duo refused the request's signature ({code} {message}): check the integration key, the secret key and the API hostname of the Admin API application, and that the application has the \"Grant read resource\" permission"
    )]
    Signature { code: i64, message: String },
    #[error("Duo answered {status} to {what}: {code} {message}{}", detail(.message_detail))]
    Api {
        what: String,
        status: u16,
        code: i64,
        message: String,
        message_detail: Option<String>,
    },
    #[error("{what} failed in transit: {message}")]
    Transport { what: String, message: String },
    #[error(
        "Duo answered {what} with a redirect ({status}) to {to_host}; redirects are not followed (the signed request would go elsewhere): check api_host"
    )]
    Redirect {
        what: String,
        status: u16,
        to_host: String,
    },
    #[error(
        "Duo's answer to {what} ({url}) is larger than {max} bytes (at least {seen}); stopped reading"
    )]
    TooLarge {
        what: String,
        url: String,
        seen: u64,
        max: u64,
    },
    #[error("Duo's answer to {what} is not what the Admin API sends: {message}")]
    InvalidResponse { what: String, message: String },
    #[error(
        "the directory returned no users; an empty read is not taken as everyone leaving (if the directory really is empty, say so with allow_empty)"
    )]
    Empty,
    #[error("cannot read the directory file {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the directory file {path} is not valid: {message}")]
    FileFormat { path: String, message: String },
    #[error("{0}")]
    Config(String),
}

fn detail(d: &Option<String>) -> String {
    d.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
}

impl DirectoryError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

impl Classify for DirectoryError {
    fn disposition(&self) -> Disposition {
        if self.is_retryable() {
            Disposition::Retryable { after: None }
        } else {
            Disposition::Fatal
        }
    }
}
