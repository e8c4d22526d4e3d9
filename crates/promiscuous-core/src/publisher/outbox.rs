//! The outbox as the relay sees it: the [`Outbox`] storage trait, its [`OutboxEntry`] rows, and
//! [`BoxError`], the error type of storage backends.

use async_trait::async_trait;

use crate::error::BoxError;

/// One encoded message waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Position in the outbox: rows are published in `id` order.
    pub id: i64,
    pub routing_key: String,
    pub payload: Vec<u8>,
}

/// Durable storage of committed, not yet confirmed messages.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// The oldest `limit` entries, in commit order.
    async fn fetch(&self, limit: usize) -> Result<Vec<OutboxEntry>, BoxError>;
    /// Forgets entries the broker confirmed.
    async fn remove(&self, ids: &[i64]) -> Result<(), BoxError>;

    /// What waits to be published (messages, age of the oldest), for the board; `None` if this
    /// outbox cannot tell (the default).
    async fn backlog(&self) -> Result<Option<crate::board::Backlog>, BoxError> {
        Ok(None)
    }
}
