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

    /// Takes the next fencing token of `fence` (1, 2, … kept with the outbox, so it survives
    /// whatever keeps the lease), once a relay took the lease; waits while a batch holds the
    /// fence ([`hold_fence`](Outbox::hold_fence)). `None` (the default): this outbox does not
    /// fence.
    async fn take_fence(&self, fence: &str) -> Result<Option<u64>, BoxError> {
        let _ = fence;
        Ok(None)
    }

    /// Holds `fence` at `token` for one batch (fetch, publish, remove), released by
    /// [`FenceHold::release`]: `None` if a later token was taken (the relay lost its lease to
    /// another). While held, [`take_fence`](Outbox::take_fence) waits, so no relay that took
    /// the lease later publishes before this batch ends. The default holds nothing.
    async fn hold_fence(&self, fence: &str, token: u64) -> Result<Option<FenceGuard>, BoxError> {
        let _ = (fence, token);
        Ok(Some(Box::new(Unfenced)))
    }
}

/// A fence held for one batch ([`Outbox::hold_fence`]).
pub type FenceGuard = Box<dyn FenceHold>;

/// What holds a fence until the batch ends.
#[async_trait]
pub trait FenceHold: Send {
    /// Ends the hold (a dropped hold ends too, without waiting).
    async fn release(self: Box<Self>) -> Result<(), BoxError>;
}

/// The hold of an outbox that does not fence.
pub struct Unfenced;

#[async_trait]
impl FenceHold for Unfenced {
    async fn release(self: Box<Self>) -> Result<(), BoxError> {
        Ok(())
    }
}
