//! Identifier newtypes, so a source id can never be passed where a target id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
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
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
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
