//! One reconcile run, and the scheduler that runs them.
//!
//! [`reconcile_once`] is the unit of work the CLI and the daemon share: read the source and the
//! target, load the links, plan (the pure planner of `scimsync-core`), guard, apply with bounded
//! concurrency in dependency order, and record every operation's outcome in the activity log,
//! updating the links as each operation completes, so an interrupted run resumes without
//! duplicates. [`Scheduler`] runs connections on cron schedules, never one connection twice at
//! once (an in-process lock plus the store's lease, which another daemon takes over when its
//! holder dies). [`Metrics`] counts what happened for `/metrics`.
//!
//! The engine is generic over the ports of `scimsync-core` and knows no adapter.
#![forbid(unsafe_code)]

mod apply;
mod budget;
pub mod clock;
mod guard;
pub mod lease;
pub mod metrics;
mod run;
pub mod scheduler;
mod trace;

pub use clock::now;
pub use guard::GuardTrip;
pub use metrics::{Concern, FinishedRun, Metrics};
pub use run::{
    Connection, DISCOVERY_MAX_AGE_MS, EngineError, Progress, RetryRefused, RunOptions, RunReport,
    StopReason, chain, reconcile_once,
};
pub use scheduler::{Job, RunRequest, Scheduler, SchedulerError};
pub use trace::TraceStep;
