//! Publisher side: what `#[publish]` generates calls into, and the outbox the relay reads.

mod hooks;
mod outbox;
pub mod tracked;

pub use hooks::{record_destroy, record_save, require_transaction, track_read};
pub use outbox::SeaOrmOutbox;
pub use tracked::{PublishedEntity, Tracked, tracked};

use serde_json::{Map, Value};

/// A SeaORM model whose writes are published. Implemented by `#[publish(...)]`.
pub trait Published: Send + Sync + 'static {
    /// Where its operations are published: `"app/model"`.
    const ENDPOINT: &'static str;
    /// The type chain, most specific first.
    const TYPES: &'static [&'static str];
    /// Published attribute names (fields and virtual attributes).
    const ATTRIBUTES: &'static [&'static str];
    /// The primary key, as sent on the wire.
    fn publisher_id(&self) -> Result<Value, serde_json::Error>;
    /// Every published attribute's current value.
    fn published_attributes(&self) -> Result<Map<String, Value>, serde_json::Error>;
}
