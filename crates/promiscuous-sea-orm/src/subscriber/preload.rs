//! The local rows of a batch, read at once: before applying a batch (or a message of several
//! operations), the applier reads, for each subscribed model, the rows of every instance the
//! batch applies to it in one query (`… WHERE key IN (…)`, [`Subscribed::find_by_publisher_ids`])
//! instead of one query per operation.
//!
//! A row read this way serves the first operation on its instance only; a second operation on
//! the same instance in the transaction (a message writing it twice) reads it again, since the
//! first changed it. The synchronizer never releases two messages writing one instance into one
//! batch. What a callback writes to *another* row of the same model in the batch is not seen by
//! that row's operation (it was read at the start of the batch); callbacks that write to the
//! replicated rows of other instances should not rely on it.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Mutex;

use promiscuous_core::Operation;
use promiscuous_core::subscriber::ApplyError;
use sea_orm::DatabaseTransaction;

use super::Subscribed;
use super::errors::db_error;

/// What a handler read ahead for a batch (type-erased: each handler knows its own).
pub(super) type Preloaded = Box<dyn Any + Send + Sync>;

/// The rows of model `M` read for a batch.
struct Rows<M> {
    found: Vec<M>,
    /// Keys of the instances whose rows were read (found or not).
    covered: HashSet<String>,
    /// Keys whose preloaded row an operation used already.
    used: HashSet<String>,
}

/// Reads the rows of `ops` of subscription `subscription` of `M`, in one query. `None` when
/// the model cannot (or an id does not convert: the operation's own lookup then reports it).
pub(super) async fn read<M: Subscribed>(
    txn: &DatabaseTransaction,
    subscription: usize,
    ops: &[&Operation],
) -> Result<Option<Preloaded>, ApplyError> {
    let ids: Vec<serde_json::Value> = ops.iter().map(|op| op.id.clone()).collect();
    let Ok(Some(select)) = M::find_by_publisher_ids(subscription, &ids) else {
        return Ok(None);
    };
    let found = select
        .all(txn)
        .await
        .map_err(|e| db_error(ops[0], "finding the local rows of a batch", e))?;
    let rows = Rows {
        found,
        covered: ops.iter().map(|op| op.key()).collect(),
        used: HashSet::new(),
    };
    Ok(Some(Box::new(Mutex::new(rows))))
}

/// The local row of `op`'s instance, if `preloaded` holds the answer: `Some(row or None)`;
/// `None` when the operation must find it itself.
pub(super) fn take<M: Subscribed>(
    preloaded: Option<&Preloaded>,
    subscription: usize,
    op: &Operation,
) -> Option<Option<M>> {
    let rows = preloaded?.downcast_ref::<Mutex<Rows<M>>>()?;
    let mut rows = rows.lock().unwrap_or_else(|p| p.into_inner());
    let key = op.key();
    if !rows.covered.contains(&key) || !rows.used.insert(key) {
        return None;
    }
    let mut mine = None;
    for row in &rows.found {
        match M::replicates(subscription, row, &op.id) {
            Ok(true) => {
                mine = Some(row.clone());
                break;
            }
            Ok(false) => {}
            Err(_) => return None,
        }
    }
    Some(mine)
}

/// The address of a handler, naming its preloaded rows within a batch.
pub(super) fn handler_id<T: ?Sized>(handler: &std::sync::Arc<T>) -> usize {
    std::sync::Arc::as_ptr(handler) as *const () as usize
}
