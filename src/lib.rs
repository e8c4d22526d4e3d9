//! # promiscuous
//!
//! Keeps the data of many small services in sync. A *publisher* service marks a SeaORM model with
//! `#[publish(...)]`; every write through it is versioned and stored in an outbox in the same
//! transaction, then relayed to a broker. A *subscriber* service marks its own model with
//! `#[subscribe(...)]` and keeps a copy of the fields it cares about, in its own database, with
//! callbacks on create, update and destroy. A subscriber never applies an older state over a
//! newer one, never applies an operation twice, and applies what a write depended on (what its
//! [`context`](mod@context) read or wrote before) first, while independent messages run in
//! parallel.
//!
//! See the README for a tour, `docs/PROTOCOL.md` for the wire format, and
//! `examples/quickstart.rs` for a runnable publisher + subscriber pair.

pub use promiscuous_core::error::log_errors;
pub use promiscuous_core::message::{self, PROTOCOL_VERSION};
pub use promiscuous_core::publisher::context::{self, context, context_as};
pub use promiscuous_core::redis::{self, Redis, RedisConfig, RedisLease, RedisVersions};
pub use promiscuous_core::subscriber::{MemoryVersions, OrderingMode, Stats};
pub use promiscuous_core::transport::{self, InProcess, Transport};
pub use promiscuous_core::{
    Change, DecodeError, Dependencies, Dependency, Error, ErrorKind, ErrorNotifier, Message,
    Operation, OperationKind, Report,
};
pub use promiscuous_derive::{define, ephemeral, observer, publish, subscribe};
pub use promiscuous_sea_orm::publisher::{Tracked, track_read, tracked};
pub use promiscuous_sea_orm::publisher::{definitions, guard};
pub use promiscuous_sea_orm::subscriber::dead_letters::Replayed;
pub use promiscuous_sea_orm::{
    AttributeError, Callbacks, Ctx, Endpoint, Ephemeral, Observed, Published, PublishedAttribute,
    Publisher, PublisherHandle, Subscribed, Subscriber, SubscriberHandle, SubscriberService,
    Subscription,
};

/// The command line an application builds with its models (feature `cli`: the crate
/// `promiscuous-cli`, which brings clap and indicatif; a library user compiles neither without it).
#[cfg(feature = "cli")]
pub use promiscuous_cli as cli;

/// The operations dashboard, an axum router (feature `dashboard`: the crate
/// `promiscuous-dashboard`, which brings axum and maud).
#[cfg(feature = "dashboard")]
pub use promiscuous_dashboard as dashboard;

/// promiscuous' own tables as `sea-orm-migration` migrations for the application's `Migrator`
/// (feature `migration`), the recommended way to create them: `promiscuous::migration::all()`.
#[cfg(feature = "migration")]
pub use promiscuous_sea_orm::migration;

/// What running workers report about themselves, for dashboards: this process's board and the
/// shared one in Redis ([`redis::RedisBoard`]).
pub use promiscuous_core::board;
/// The live feed of operations a subscriber applied (for `Subscriber::feed` and the
/// dashboard's `/stream`).
pub use promiscuous_core::subscriber::{Feed, FeedEvent};

/// The lower layers, for custom pipelines: relay and outbox, subscriber runtime and applier.
pub mod pipeline {
    pub use promiscuous_core::publisher::{
        FenceGuard, FenceHold, Lease, Outbox, OutboxEntry, Relay, RelayConfig, Unfenced,
    };
    pub use promiscuous_core::subscriber::{
        Applied, Applier, ApplyError, DeadLetter, SubscriberConfig, SubscriberRuntime,
        VersionStore, Wakeups, synchronizer,
    };
    pub use promiscuous_sea_orm::publisher::{PendingMessage, outbox_messages, record_sync, wake};
    pub use promiscuous_sea_orm::{SeaOrmApplier, SeaOrmOutbox, schema, tables};
}

/// Error type of callbacks.
pub use promiscuous_core::error::BoxError;

#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use promiscuous_core::message::instance_key;
    pub use promiscuous_sea_orm::publisher::{
        Definition, Endpoint, Ephemeral, Published, PublishedAttribute, PublishedEntity,
        before_destroy, before_write, instance_keys, record_destroy, record_save,
        require_transaction,
    };
    pub use promiscuous_sea_orm::subscriber::{
        AttributeError, Callbacks, Observed, Subscribed, Subscription, attribute, publisher_id,
    };
    pub use sea_orm;
    pub use sea_orm::prelude::async_trait::async_trait;
    pub use serde_json;
}
