//! Identifier newtypes, so a source id can never be passed where a target id is expected.
//!
//! Each holds a [`CompactString`]: Duo's and Salesforce's ids (20 and 18 characters) are kept
//! inline, without an allocation of their own.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub CompactString);

        impl $name {
            pub fn new(value: impl Into<CompactString>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.into())
            }
        }

        impl From<CompactString> for $name {
            fn from(value: CompactString) -> Self {
                Self(value)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value.into())
            }
        }
    };
}

id_type!(
    /// A user's stable id in the source directory (Duo: `user_id`, `DU` + 18 characters).
    SourceUserId
);
id_type!(
    /// A group's stable id in the source directory (Duo: `group_id`, `DG` + 18 characters).
    SourceGroupId
);
id_type!(
    /// A user's `id` on the SCIM target (Salesforce: the 18-character User Id, `005…`).
    TargetUserId
);
id_type!(
    /// A group's `id` on the SCIM target (Salesforce: the public group Id, `00G…`).
    TargetGroupId
);
