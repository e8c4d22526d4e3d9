//! SeaORM glue for promiscuous.
//!
//! - [`publisher`]: what `#[publish]` generates calls into: per-instance versions and outbox rows
//!   written inside the caller's transaction, and the [`publisher::SeaOrmOutbox`] the relay reads.
//! - [`subscriber`]: what `#[subscribe]` generates implements ([`subscriber::Subscribed`]), the
//!   user's [`subscriber::Callbacks`], and the [`subscriber::SeaOrmApplier`] that applies
//!   messages (upsert or delete, applied version stored in the same transaction).
//! - [`tables`] and [`schema`]: promiscuous' own tables.

#[cfg(feature = "migration")]
pub mod migration;
pub mod publisher;
pub mod schema;
pub mod service;
pub mod subscriber;
pub mod tables;

pub use publisher::{Endpoint, Ephemeral, Published, PublishedAttribute, SeaOrmOutbox};
pub use schema::{setup_publisher, setup_subscriber};
pub use service::{Publisher, PublisherHandle, Subscriber, SubscriberHandle, SubscriberService};
pub use subscriber::{
    AttributeError, Callbacks, Ctx, Observed, SeaOrmApplier, Subscribed, Subscription,
};
