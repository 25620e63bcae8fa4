//! Source readers: where scimsync learns who people are.
//!
//! - [`DuoSource`]: Duo's Admin API — requests signed as Duo's reference client signs them
//!   ([`signing`], v5 by default, v2 on request), users and groups read page by page following
//!   `metadata.next_offset` only (the server may return fewer rows than asked), 429 and 5xx
//!   retried with exponential backoff and jitter, Duo's error envelope carried into the error.
//! - [`FileSource`]: the same model as JSON, for demos, imports and tests.
//!
//! A failed read is an error, never a smaller directory; a read with no users is an error too
//! unless allowed. A record that cannot be read is listed in
//! `SourceSnapshot::unreadable`, so its account is left as it is rather than deactivated.
//! The engine compares the number of users with the last run's.
#![forbid(unsafe_code)]

mod duo;
mod error;
mod file;
#[doc(hidden)]
pub mod fuzzing;
pub mod signing;

pub use duo::{CheckReport, DuoConfig, DuoEndpoint, DuoSource};
pub use error::DirectoryError;
pub use file::FileSource;
pub use signing::SigVersion;
