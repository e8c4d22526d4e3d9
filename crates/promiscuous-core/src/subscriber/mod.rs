//! The subscriber runtime: consume a queue, decode each message, hand it to an [`Applier`]
//! (the database glue), then ack. Bad input is dead-lettered with its error and stops nothing
//! else; transient failures are retried with exponential backoff, then dead-lettered.

mod applier;
mod runtime;
mod versions;

pub use applier::{Applied, Applier, ApplyError, DeadLetter};
pub use runtime::{Stats, SubscriberConfig, SubscriberRuntime};
pub use versions::VersionStore;
