//! The publisher pipeline: a write commits its operation to the outbox in the same database
//! transaction (see `promiscuous-sea-orm`), then the [`Relay`] moves outbox rows to the transport
//! in order, removing them only once the broker confirmed them.

pub mod context;
mod lease;
mod outbox;
mod relay;
pub mod wake;

pub use lease::Lease;
pub use outbox::{FenceGuard, FenceHold, Outbox, OutboxEntry, Unfenced};
pub use relay::{Relay, RelayConfig};
