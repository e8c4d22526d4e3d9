//! The outbox as the relay sees it: each message assembled from its header row and its
//! operation rows (see [`hooks`](super::hooks)).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use promiscuous_core::BoxError;
use promiscuous_core::publisher::{Outbox, OutboxEntry};
use promiscuous_core::{Dependency, Message, Operation};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::tables::{outbox, outbox_operations};

/// The outbox table of a publisher database, read by the relay.
#[derive(Clone)]
pub struct SeaOrmOutbox {
    db: DatabaseConnection,
    /// For each message fetched: its last operation row then. Only those rows are removed with
    /// it: an operation appended later (see [`remove`](Outbox::remove)) is published again.
    fetched: Arc<Mutex<HashMap<i64, i64>>>,
}

/// One message waiting in the outbox, as the relay publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMessage {
    /// The header row's id: messages are published in this order.
    pub id: i64,
    /// The id of its last operation row (0 for a protocol-1 row without operation rows).
    pub last_operation: i64,
    pub routing_key: String,
    pub message: Message,
}

/// Why an outbox row cannot be published.
fn unreadable(id: i64, what: &str, e: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("promiscuous: outbox row {id}: {what}: {e}"))
}

impl SeaOrmOutbox {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            fetched: Arc::default(),
        }
    }

    /// Messages waiting to be published.
    pub async fn pending(&self) -> Result<u64, DbErr> {
        use sea_orm::PaginatorTrait;
        outbox::Entity::find().count(&self.db).await
    }

    /// The oldest `limit` messages waiting (all with `None`), assembled as they are published.
    pub async fn messages(&self, limit: Option<usize>) -> Result<Vec<PendingMessage>, DbErr> {
        messages(&self.db, limit).await
    }
}

/// The oldest `limit` committed messages of `db`'s outbox (all with `None`), each with its
/// operations in write order and its dependencies: every operation's instance at its version
/// (`write`), and the union of what the causal context had read before each operation, at the
/// highest version, leaving out the instances the message writes itself (`read`).
///
/// A header written by a protocol-1 publisher that already holds its operations is returned as
/// it is.
pub async fn messages<C: ConnectionTrait>(
    db: &C,
    limit: Option<usize>,
) -> Result<Vec<PendingMessage>, DbErr> {
    let mut query = outbox::Entity::find().order_by_asc(outbox::Column::Id);
    if let Some(limit) = limit {
        query = query.limit(limit as u64);
    }
    let headers = query.all(db).await?;
    if headers.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = headers.iter().map(|h| h.id).collect();
    let mut operations: HashMap<i64, Vec<outbox_operations::Model>> = HashMap::new();
    // Well under SQLite's limit of bound parameters per statement.
    for chunk in ids.chunks(500) {
        let rows = outbox_operations::Entity::find()
            .filter(outbox_operations::Column::OutboxId.is_in(chunk.iter().copied()))
            .order_by_asc(outbox_operations::Column::Id)
            .all(db)
            .await?;
        for row in rows {
            operations.entry(row.outbox_id).or_default().push(row);
        }
    }
    headers
        .into_iter()
        .map(|header| {
            let mut message: Message = serde_json::from_str(&header.payload)
                .map_err(|e| unreadable(header.id, "decoding the header", e))?;
            let rows = operations.remove(&header.id).unwrap_or_default();
            let last_operation = rows.last().map_or(0, |r| r.id);
            if message.operations.is_empty() {
                assemble(header.id, &mut message, rows)?;
            }
            Ok(PendingMessage {
                id: header.id,
                last_operation,
                routing_key: header.routing_key,
                message,
            })
        })
        .collect()
}

/// Fills a header's operations and dependencies from its operation rows.
fn assemble(
    id: i64,
    message: &mut Message,
    rows: Vec<outbox_operations::Model>,
) -> Result<(), DbErr> {
    let mut reads: BTreeMap<String, u64> = BTreeMap::new();
    for row in rows {
        let op: Operation = serde_json::from_str(&row.operation)
            .map_err(|e| unreadable(id, "decoding an operation", e))?;
        if let Some(text) = &row.reads {
            let deps: Vec<Dependency> = serde_json::from_str(text)
                .map_err(|e| unreadable(id, "decoding dependencies", e))?;
            for d in deps {
                let v = reads.entry(d.key).or_insert(0);
                *v = (*v).max(d.version);
            }
        }
        message.dependencies.write.push(Dependency {
            key: op.key(),
            version: op.version,
        });
        message.operations.push(op);
    }
    for written in &message.dependencies.write {
        reads.remove(&written.key);
    }
    message.dependencies.read = reads
        .into_iter()
        .map(|(key, version)| Dependency { key, version })
        .collect();
    Ok(())
}

#[async_trait]
impl Outbox for SeaOrmOutbox {
    async fn fetch(&self, limit: usize) -> Result<Vec<OutboxEntry>, BoxError> {
        let pending = messages(&self.db, Some(limit)).await?;
        // A header without operations (the hooks never commit one) publishes nothing.
        let (empty, pending): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|p| p.message.operations.is_empty());
        if !empty.is_empty() {
            let ids: Vec<i64> = empty.iter().map(|p| p.id).collect();
            self.remove(&ids).await?;
        }
        let mut fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        for p in &pending {
            fetched.insert(p.id, p.last_operation);
        }
        drop(fetched);
        Ok(pending
            .into_iter()
            .map(|p| OutboxEntry {
                id: p.id,
                routing_key: p.routing_key,
                payload: p.message.encode(),
            })
            .collect())
    }

    /// Removes the confirmed messages: the operation rows fetched with each, then its header if
    /// no operation row is left. One can be: the hooks never append to a committed message, but
    /// on SQLite an application that turns `defer_foreign_keys` on itself before its first
    /// published write makes them take an earlier transaction's message for its own (see
    /// [`transaction`](super::transaction)); its operations are then published as a message of
    /// their own instead of being lost.
    async fn backlog(&self) -> Result<Option<promiscuous_core::board::Backlog>, BoxError> {
        use sea_orm::PaginatorTrait;
        let messages = outbox::Entity::find().count(&self.db).await?;
        let oldest = outbox::Entity::find()
            .order_by_asc(outbox::Column::Id)
            .one(&self.db)
            .await?
            .map(|row| row.created_at_ms);
        Ok(Some(promiscuous_core::board::Backlog {
            messages,
            oldest_ms: oldest,
        }))
    }

    async fn take_fence(&self, fence: &str) -> Result<Option<u64>, BoxError> {
        Ok(super::fence::take(&self.db, fence).await?)
    }

    async fn hold_fence(
        &self,
        fence: &str,
        token: u64,
    ) -> Result<Option<promiscuous_core::publisher::FenceGuard>, BoxError> {
        Ok(super::fence::hold(&self.db, fence, token).await?)
    }

    async fn remove(&self, ids: &[i64]) -> Result<(), BoxError> {
        let fetched: Vec<(i64, i64)> = {
            let mut fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter()
                .map(|id| (*id, fetched.remove(id).unwrap_or(i64::MAX)))
                .collect()
        };
        // MySQL/MariaDB: READ COMMITTED, whose deletes lock the rows they delete and no gap:
        // under REPEATABLE READ (InnoDB's default) deleting a message's operation rows locks
        // the index gap up to the next one, which a writer appending its own (uncommitted)
        // message's rows would wait for while the relay waits for that writer's rows: a
        // deadlock, which InnoDB breaks by failing one of them (measured: the bench's writers).
        let txn = if self.db.get_database_backend() == sea_orm::DbBackend::MySql {
            self.db
                .begin_with_config(Some(sea_orm::IsolationLevel::ReadCommitted), None)
                .await?
        } else {
            self.db.begin().await?
        };
        // Well under SQLite's limit of bound parameters per statement.
        for chunk in fetched.chunks(400) {
            let mut fetched_rows = Condition::any();
            for (id, last) in chunk {
                fetched_rows = fetched_rows.add(
                    Condition::all()
                        .add(outbox_operations::Column::OutboxId.eq(*id))
                        .add(outbox_operations::Column::Id.lte(*last)),
                );
            }
            outbox_operations::Entity::delete_many()
                .filter(fetched_rows)
                .exec(&txn)
                .await?;
        }
        let left: Vec<i64> = outbox_operations::Entity::find()
            .select_only()
            .column(outbox_operations::Column::OutboxId)
            .filter(outbox_operations::Column::OutboxId.is_in(ids.iter().copied()))
            .into_tuple()
            .all(&txn)
            .await?;
        outbox::Entity::delete_many()
            .filter(outbox::Column::Id.is_in(ids.iter().copied().filter(|id| !left.contains(id))))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}
