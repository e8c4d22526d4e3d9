//! The [`Lease`] trait: the exclusive right to relay one outbox, so several relay processes can
//! run for availability while only one publishes.

use async_trait::async_trait;

use crate::error::Error;

/// Exclusive right to relay one outbox. Several relay processes may run for one publisher
/// database (for availability); only the holder of the lease publishes, so rows are never
/// published by two relays at once nor out of order.
#[async_trait]
pub trait Lease: Send + Sync + 'static {
    /// Takes the lease if free, or renews it if held; returns whether it is held now.
    async fn hold(&self) -> Result<bool, Error>;
    /// Gives the lease up (if held), so another relay can take over at once.
    async fn release(&self) -> Result<(), Error>;
}
