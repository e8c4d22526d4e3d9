//! Ephemerals: structs published like models but never stored by the publisher (events). The
//! [`Ephemeral`] trait, implemented by `#[ephemeral(...)]`, publishes one through the hooks.

use sea_orm::{ConnectionTrait, DbErr};

use super::{Published, hooks};

/// A struct published like a model, but never stored by the publisher: an event. Implemented
/// by `#[ephemeral(...)]`.
pub trait Ephemeral: Published + Sized {
    /// Publishes it: a create of its id at the next version, on each of its endpoints, written
    /// to the outbox in the caller's transaction (refused outside one), with the causal
    /// context's dependencies.
    fn publish<C: ConnectionTrait>(
        &self,
        db: &C,
    ) -> impl std::future::Future<Output = Result<(), DbErr>> + Send {
        hooks::record_ephemeral(self, db)
    }
}
