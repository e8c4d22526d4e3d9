//! Publisher side: what `#[publish]` generates calls into, and the outbox the relay reads.

pub mod definitions;
mod ephemeral;
pub mod fence;
pub mod guard;
mod hooks;
mod outbox;
mod read_tables;
mod sql;
pub mod tracked;
pub mod transaction;
pub mod wake;

pub use definitions::Definition;
pub use ephemeral::Ephemeral;
pub use hooks::record_sync;
pub use hooks::{
    before_destroy, before_write, record_destroy, record_ephemeral, record_save,
    require_transaction, track_read,
};
pub use outbox::{PendingMessage, SeaOrmOutbox, messages as outbox_messages};
pub use tracked::{PublishedEntity, Tracked, tracked};

use promiscuous_core::message::instance_key;
use serde_json::{Map, Value};

/// One attribute published to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedAttribute {
    pub name: &'static str,
    /// Its Rust type as written on the model (empty for a virtual attribute), for exported
    /// definitions and mock publishers.
    pub rust_type: &'static str,
}

/// One endpoint a model is published to, and what is sent there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// `"app/model"`.
    pub endpoint: &'static str,
    /// The type chain, most specific first (polymorphism).
    pub types: &'static [&'static str],
    pub attributes: &'static [PublishedAttribute],
}

/// A model whose writes are published. Implemented by `#[publish(...)]` (SeaORM models, one
/// [`Endpoint`] per stacked attribute) and `#[ephemeral(...)]` (plain structs).
pub trait Published: Send + Sync + 'static {
    /// Where its operations are published: at least one endpoint.
    const ENDPOINTS: &'static [Endpoint];
    /// The primary key, as sent on the wire.
    fn publisher_id(&self) -> Result<Value, serde_json::Error>;
    /// The current value of every attribute published to `ENDPOINTS[endpoint]`.
    fn published_attributes(
        &self,
        endpoint: usize,
    ) -> Result<Map<String, Value>, serde_json::Error>;
}

/// The instance keys of `model`, one per endpoint (none if its id does not serialize).
pub fn instance_keys<M: Published>(model: &M) -> Vec<String> {
    match model.publisher_id() {
        Ok(id) => M::ENDPOINTS
            .iter()
            .map(|e| instance_key(e.endpoint, &id))
            .collect(),
        Err(_) => Vec::new(),
    }
}
