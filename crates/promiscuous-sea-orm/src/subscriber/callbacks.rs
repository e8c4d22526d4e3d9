//! What a subscribed model reacts with: the [`Callbacks`] trait and the [`Ctx`] its methods see
//! (the applying transaction, the message, the operation).

use std::collections::BTreeMap;
use std::future::Future;

use promiscuous_core::BoxError;
use promiscuous_core::{Change, Message, Operation};
use sea_orm::DatabaseTransaction;

/// What a callback sees: the transaction the operation is applied in, the message and the
/// operation. A callback error rolls the message back and it is retried.
pub struct Ctx<'a> {
    pub db: &'a DatabaseTransaction,
    pub message: &'a Message,
    pub operation: &'a Operation,
}

impl Ctx<'_> {
    /// Published attributes changed by an update, before and after (empty otherwise).
    pub fn changes(&self) -> &BTreeMap<String, Change> {
        static EMPTY: BTreeMap<String, Change> = BTreeMap::new();
        self.operation.changes.as_ref().unwrap_or(&EMPTY)
    }

    /// The change of one attribute, if it changed.
    pub fn changed(&self, attribute: &str) -> Option<&Change> {
        self.changes().get(attribute)
    }
}

/// Reactions of a subscribed model to replicated operations.
///
/// Callbacks run inside the transaction that applies the operation, before it commits: they
/// are **at least once** — if the commit or the ack fails, the message is applied again and
/// the callback runs again — so make their side effects idempotent. Every method defaults to
/// doing nothing.
pub trait Callbacks: Send + Sync {
    /// After the local row was created.
    fn after_create(&self, ctx: &Ctx<'_>) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }
    /// After the local row was updated; `ctx.changes()` has before/after values.
    fn after_update(&self, ctx: &Ctx<'_>) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }
    /// After the local row was deleted; `self` is the row as it was.
    fn after_destroy(&self, ctx: &Ctx<'_>) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }
}
