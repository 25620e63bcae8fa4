//! The heart of scimsync: the model, the policy and the pure planner.
//!
//! This crate owns what every other crate agrees on:
//! - the source model ([`source`]): directory users and groups as a source directory reports them;
//! - the target model ([`target`]): users, groups and the catalogue (profiles, permission sets,
//!   roles) as a SCIM target reports them;
//! - the links ([`links`]): what earlier runs left behind (who is whose, what the engine owns);
//! - the policy ([`policy`]): scope, attribute mapping, governance rules and safety limits;
//! - the mapping ([`mapping`]): source attributes into target attributes;
//! - policy checks and name resolution ([`governance`]);
//! - the plan ([`plan`]), the planner that computes it ([`planner::plan`]) and its rendering
//!   as a table or JSON ([`render`]);
//! - with the `testing` feature, builders and an in-memory `apply` (module `testing`);
//! - the stored state of linked target objects and the rules of incremental runs ([`state`]);
//! - the ports ([`ports`]): the traits the adapters (source readers, SCIM client, store) implement.
//!
//! It must not do I/O, read the clock or pull in an async runtime: the planner is a pure
//! function of its inputs, so the same inputs always give the same plan.
#![forbid(unsafe_code)]

pub mod activity;
pub mod attributes;
pub mod budget;
pub mod governance;
pub mod ids;
pub mod links;
pub mod mapping;
pub mod plan;
pub mod planner;
pub mod policy;
pub mod ports;
pub mod refusals;
pub mod render;
pub mod retry;
pub mod source;
pub mod state;
pub mod target;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;

pub use attributes::Attributes;
pub use compact_str::{CompactString, ToCompactString, format_compact};
pub use ids::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId};
pub use time::Timestamp;
