//! The [`Lease`] trait: the exclusive right to relay one outbox, so several relay processes can
//! run for availability while only one publishes.

use async_trait::async_trait;

use crate::error::Error;

/// Exclusive right to relay one outbox. Several relay processes may run for one publisher
/// database (for availability); only the holder of the lease publishes, so rows are never
/// published by two relays at once nor out of order.
///
/// A lease kept elsewhere than the outbox (Redis) can be believed held by two relays at once:
/// one paused past its lease's expiry, or a Redis failover that lost the lease's key. A lease
/// that names a [`fence`](Lease::fence) closes that gap: each relay that takes the lease takes
/// a new fencing token from the outbox itself ([`Outbox::take_fence`]), and publishes a batch
/// only while the outbox still holds its token ([`Outbox::hold_fence`]), so a relay that lost
/// the lease to another cannot publish any more (see [`Relay`](super::Relay)).
///
/// [`Outbox::take_fence`]: super::Outbox::take_fence
/// [`Outbox::hold_fence`]: super::Outbox::hold_fence
#[async_trait]
pub trait Lease: Send + Sync + 'static {
    /// Takes the lease if free, or renews it if held; returns whether it is held now.
    async fn hold(&self) -> Result<bool, Error>;
    /// Gives the lease up (if held), so another relay can take over at once.
    async fn release(&self) -> Result<(), Error>;
    /// The name of this lease's fencing token in the outbox; `None` (the default): no fencing.
    fn fence(&self) -> Option<&str> {
        None
    }
}
