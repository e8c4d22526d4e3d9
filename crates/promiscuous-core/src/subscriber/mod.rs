//! The subscriber runtime: consume a queue, decode each message and admit it only from its
//! owner (`trust`), hold it until what it depends
//! on has been processed (the [`synchronizer`]), apply it on one of several runners through an
//! [`Applier`] (the database glue), then ack. Bad input is dead-lettered with its error and
//! stops nothing else; transient failures are retried with exponential backoff, then
//! dead-lettered; a dependency that never arrives is skipped after a timeout (recovery).

mod applier;
mod config;
mod metrics;
mod runtime;
mod session;
pub mod synchronizer;
pub mod trust;
mod versions;

pub use applier::{Applied, Applier, ApplyError, At, DeadLetter, Failed, Rejected};
pub use config::{Ordering, Stats, SubscriberConfig};
pub use runtime::SubscriberRuntime;
pub use versions::{MemoryVersions, VersionStore, Wakeups};
