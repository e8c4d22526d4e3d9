//! The applier's errors: which request failed, on which operation, and whether retrying may
//! help (transient: the database) or not (permanent: the message's attributes).

use std::sync::Arc;

use promiscuous_core::Operation;
use promiscuous_core::subscriber::{ApplyError, At, Failed, Rejected};
use sea_orm::DbErr;

use super::AttributeError;

/// A failed request for one operation.
pub(super) fn db_error(op: &Operation, doing: &'static str, e: DbErr) -> ApplyError {
    ApplyError::Transient(Failed::Database {
        at: At::of(op),
        doing,
        source: Arc::new(e),
    })
}

/// A failed request for the whole message (its transaction, its ignored versions).
pub(super) fn txn_error(doing: &'static str) -> impl FnOnce(DbErr) -> ApplyError {
    move |e| {
        ApplyError::Transient(Failed::Transaction {
            doing,
            source: Arc::new(e),
        })
    }
}

pub(super) fn attribute_error(op: &Operation, e: AttributeError) -> ApplyError {
    ApplyError::Permanent(Rejected::Attribute {
        at: At::of(op),
        source: Arc::new(e),
    })
}
