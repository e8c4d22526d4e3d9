//! The subscriber runtime: consume a queue, decode each message and admit it only from its
//! owner (`trust`), hold it until what it depends
//! on has been processed (the [`synchronizer`]), apply it on one of several runners through an
//! [`Applier`] (the database glue), then ack. Bad input is dead-lettered with its error and
//! stops nothing else; transient failures are retried with exponential backoff, then
//! dead-lettered; a dependency that never arrives is skipped after a timeout (recovery).
//!
//! Layers, each using only those below it: `runtime` (the public [`SubscriberRuntime`]:
//! queue, reconnection) → `session` (pump, timer, runners) → `processing` (one message: apply,
//! retry, dead-letter, ack) and the `synchronizer`, `trust`; below them `config` (settings), and at the bottom
//! the leaves `stats`, `applier`, `versions`, `metrics`, `feed` (applied operations, for live streams) (the error type sits between: it names
//! `applier`'s and `stats`' types, and `config` and `versions` use it).

mod applier;
mod config;
pub mod feed;
mod metrics;
mod processing;
mod runtime;
mod session;
mod stats;
pub mod synchronizer;
pub mod trust;
mod versions;

pub use applier::{Applied, Applier, ApplyError, At, DeadLetter, Failed, Rejected};
pub use config::{
    MAX_RECONNECT_DELAY, MAX_RETRY_DELAY, MIN_RECHECK_INTERVAL, OrderingMode, SubscriberConfig,
};
pub use feed::{Feed, FeedEvent};
pub use runtime::SubscriberRuntime;
pub use stats::Stats;
pub use versions::{MemoryVersions, VersionStore, Wakeups};
