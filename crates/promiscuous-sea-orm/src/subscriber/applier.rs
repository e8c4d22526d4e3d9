use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use promiscuous_core::publisher::BoxError;
use promiscuous_core::subscriber::{Applied, Applier, ApplyError, DeadLetter};
use promiscuous_core::{Message, Operation, OperationKind};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    NotSet, QueryFilter, QueryOrder, Set, TransactionTrait,
};

use super::{AttributeError, Ctx, Observed, Subscribed, Subscription};
use crate::tables::{applied, dead_letters};

/// Applies messages to a subscriber database: each message in one transaction, each operation
/// by upsert (create/update) or delete (destroy) of the rows of every model subscribed to its
/// endpoint, skipping versions already applied; the applied version is claimed first, in the
/// same transaction, so a redelivered message has no second effect, even when two workers
/// apply it at once. Operations on endpoints nobody here follows only have their version
/// recorded (messages that depend on them need not wait).
#[derive(Clone)]
pub struct SeaOrmApplier {
    db: DatabaseConnection,
    /// endpoint → what follows it, with the type it follows (if any).
    handlers: HashMap<&'static str, Vec<Registered>>,
}

impl SeaOrmApplier {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            handlers: HashMap::new(),
        }
    }

    /// Follows each of `M::SUBSCRIPTIONS` into model `M`.
    pub fn subscribe<M: Subscribed>(mut self) -> Self {
        for (n, s) in M::SUBSCRIPTIONS.iter().enumerate() {
            self.register(s, Arc::new(ModelHandler::<M>::new(n)));
        }
        self
    }

    /// Runs the callbacks of observer `O` for each operation of `O::SUBSCRIPTIONS`.
    pub fn observe<O: Observed>(mut self) -> Self {
        for (n, s) in O::SUBSCRIPTIONS.iter().enumerate() {
            self.register(s, Arc::new(ObserverHandler::<O>::new(n)));
        }
        self
    }

    fn register(&mut self, s: &Subscription, handler: Arc<dyn Handler>) {
        self.handlers.entry(s.from).or_default().push(Registered {
            as_type: s.as_type,
            handler,
        });
    }

    /// What applies `op`: the handlers of the first type of its chain that something follows
    /// on its endpoint, else those following the endpoint without a type (none: ignored).
    fn handlers_for(&self, op: &Operation) -> Vec<&Arc<dyn Handler>> {
        let Some(registered) = self.handlers.get(op.endpoint.as_str()) else {
            return Vec::new();
        };
        let of = |as_type: Option<&str>| -> Vec<&Arc<dyn Handler>> {
            registered
                .iter()
                .filter(|r| r.as_type == as_type)
                .map(|r| &r.handler)
                .collect()
        };
        op.types
            .iter()
            .map(|t| of(Some(t)))
            .find(|found| !found.is_empty())
            .unwrap_or_else(|| of(None))
    }

    /// Endpoints followed.
    pub fn endpoints(&self) -> BTreeSet<&'static str> {
        self.handlers.keys().copied().collect()
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The stored dead letters, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<dead_letters::Model>, DbErr> {
        dead_letters::Entity::find()
            .order_by_asc(dead_letters::Column::Id)
            .all(&self.db)
            .await
    }

    /// The applied version of an instance (`"{endpoint}/{id}"`), if any.
    pub async fn applied_version(&self, key: &str) -> Result<Option<u64>, DbErr> {
        Ok(applied::Entity::find_by_id(key.to_string())
            .one(&self.db)
            .await?
            .map(|r| r.version as u64))
    }

    async fn apply_in(
        &self,
        txn: &DatabaseTransaction,
        message: &Message,
    ) -> Result<Applied, ApplyError> {
        let mut outcome = Applied::default();
        for op in &message.operations {
            if !claim(txn, op).await? {
                outcome.skipped += 1;
                continue;
            }
            let handlers = self.handlers_for(op);
            if handlers.is_empty() {
                // Not followed: only its version is recorded, for the messages depending on it.
                outcome.ignored += 1;
                continue;
            }
            for h in handlers {
                h.apply(txn, message, op).await?;
            }
            outcome.applied += 1;
        }
        Ok(outcome)
    }
}

/// Records `op.version` as the instance's applied version if it is newer than the recorded one,
/// in one conditional upsert; returns whether it was (`false`: a duplicate or a stale version).
/// Done before the operation's effect, so two transactions applying the same version (two
/// worker processes) cannot both get `true`: the second waits on the first's row lock and then
/// finds the version taken.
async fn claim(txn: &DatabaseTransaction, op: &Operation) -> Result<bool, ApplyError> {
    let version = op.version as i64;
    let on_conflict = OnConflict::column(applied::Column::Key)
        .update_column(applied::Column::Version)
        .action_and_where(Expr::col((applied::Entity, applied::Column::Version)).lt(version))
        .to_owned();
    let rows = applied::Entity::insert(applied::ActiveModel {
        key: Set(op.key()),
        version: Set(version),
    })
    .on_conflict(on_conflict)
    .exec_without_returning(txn)
    .await
    .map_err(|e| db_error(op, "recording the applied version", e))?;
    Ok(rows > 0)
}

fn db_error(op: &Operation, doing: &str, e: DbErr) -> ApplyError {
    ApplyError::Transient(format!(
        "{} {} v{}: {doing}: {e}",
        op.operation,
        op.key(),
        op.version
    ))
}

fn attribute_error(op: &Operation, e: AttributeError) -> ApplyError {
    ApplyError::Permanent(format!(
        "{} {} v{}: {e}",
        op.operation,
        op.key(),
        op.version
    ))
}

#[async_trait]
impl Applier for SeaOrmApplier {
    fn bindings(&self) -> Vec<String> {
        let apps: BTreeSet<String> = self
            .handlers
            .keys()
            .map(|e| e.split('/').next().unwrap_or(e).to_string())
            .collect();
        apps.into_iter().collect()
    }

    async fn apply(&self, message: &Message) -> Result<Applied, ApplyError> {
        let txn = self
            .db
            .begin()
            .await
            .map_err(|e| ApplyError::Transient(format!("beginning a transaction: {e}")))?;
        let outcome = self.apply_in(&txn, message).await?;
        txn.commit()
            .await
            .map_err(|e| ApplyError::Transient(format!("committing: {e}")))?;
        Ok(outcome)
    }

    fn batches(&self) -> bool {
        true
    }

    async fn apply_batch(&self, messages: &[&Message]) -> Option<Result<Vec<Applied>, ApplyError>> {
        Some(
            async {
                let txn =
                    self.db.begin().await.map_err(|e| {
                        ApplyError::Transient(format!("beginning a transaction: {e}"))
                    })?;
                let mut outcomes = Vec::with_capacity(messages.len());
                for message in messages {
                    outcomes.push(self.apply_in(&txn, message).await?);
                }
                txn.commit()
                    .await
                    .map_err(|e| ApplyError::Transient(format!("committing: {e}")))?;
                Ok(outcomes)
            }
            .await,
        )
    }

    async fn versions(&self, keys: &[String]) -> Result<Vec<u64>, BoxError> {
        let mut found: HashMap<String, u64> = HashMap::new();
        // Well under SQLite's limit of bound parameters per statement.
        for chunk in keys.chunks(500) {
            let rows = applied::Entity::find()
                .filter(applied::Column::Key.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?;
            found.extend(rows.into_iter().map(|r| (r.key, r.version as u64)));
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k).copied().unwrap_or(0))
            .collect())
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), BoxError> {
        dead_letters::ActiveModel {
            id: NotSet,
            queue: Set(letter.queue),
            routing_key: Set(letter.routing_key),
            payload: Set(letter.payload),
            error: Set(letter.error),
            attempts: Set(letter.attempts as i32),
            at_ms: Set(letter.at_ms),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }
}

/// Applies the operations of one endpoint to one subscribed model.
#[async_trait]
trait Handler: Send + Sync {
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        message: &Message,
        op: &Operation,
    ) -> Result<(), ApplyError>;
}

#[derive(Clone)]
struct Registered {
    as_type: Option<&'static str>,
    handler: Arc<dyn Handler>,
}

/// Applies one subscription of model `M`.
struct ModelHandler<M> {
    subscription: usize,
    model: PhantomData<fn() -> M>,
}

impl<M> ModelHandler<M> {
    fn new(subscription: usize) -> Self {
        Self {
            subscription,
            model: PhantomData,
        }
    }
}

/// Runs the callbacks of one subscription of observer `O`.
struct ObserverHandler<O> {
    subscription: usize,
    observer: PhantomData<fn() -> O>,
}

impl<O> ObserverHandler<O> {
    fn new(subscription: usize) -> Self {
        Self {
            subscription,
            observer: PhantomData,
        }
    }
}

/// A callback failed: `follower` is what runs it ("the model following", "the observer of"),
/// for the subscription `subscription` of its type.
fn callback_error(
    op: &Operation,
    which: &str,
    follower: &str,
    subscription: Option<&Subscription>,
    e: BoxError,
) -> ApplyError {
    ApplyError::Transient(format!(
        "{} {} v{}: callback {which} of {follower} {} failed: {e}",
        op.operation,
        op.key(),
        op.version,
        subscription.map_or("?", |s| s.from),
    ))
}

fn no_attributes(op: &Operation) -> ApplyError {
    ApplyError::Permanent(format!("{} {}: no attributes", op.operation, op.key()))
}

#[async_trait]
impl<M: Subscribed> Handler for ModelHandler<M> {
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        message: &Message,
        op: &Operation,
    ) -> Result<(), ApplyError> {
        let sub = self.subscription;
        let ctx = Ctx {
            db: txn,
            message,
            operation: op,
        };
        let failed = |which: &str, e: BoxError| {
            callback_error(
                op,
                which,
                "the model following",
                M::SUBSCRIPTIONS.get(sub),
                e,
            )
        };
        let existing = M::find_by_publisher_id(sub, &op.id)
            .map_err(|e| attribute_error(op, e))?
            .one(txn)
            .await
            .map_err(|e| db_error(op, "finding the local row", e))?;
        match op.operation {
            OperationKind::Create | OperationKind::Update => {
                let attributes = op.attributes.as_ref().ok_or_else(|| no_attributes(op))?;
                match existing {
                    Some(row) => {
                        let mut active: M::Active = row.clone().into_active_model();
                        M::apply_attributes(sub, &mut active, attributes)
                            .map_err(|e| attribute_error(op, e))?;
                        let row = if active.is_changed() {
                            active
                                .update(txn)
                                .await
                                .map_err(|e| db_error(op, "updating", e))?
                        } else {
                            row
                        };
                        row.after_update(&ctx)
                            .await
                            .map_err(|e| failed("after_update", e))
                    }
                    None => {
                        let active = M::new_active_model(sub, &op.id, attributes)
                            .map_err(|e| attribute_error(op, e))?;
                        let row = active
                            .insert(txn)
                            .await
                            .map_err(|e| db_error(op, "inserting", e))?;
                        row.after_create(&ctx)
                            .await
                            .map_err(|e| failed("after_create", e))
                    }
                }
            }
            OperationKind::Destroy => match existing {
                Some(row) => {
                    row.clone()
                        .delete(txn)
                        .await
                        .map_err(|e| db_error(op, "deleting", e))?;
                    row.after_destroy(&ctx)
                        .await
                        .map_err(|e| failed("after_destroy", e))
                }
                None => Ok(()),
            },
        }
    }
}

#[async_trait]
impl<O: Observed> Handler for ObserverHandler<O> {
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        message: &Message,
        op: &Operation,
    ) -> Result<(), ApplyError> {
        let sub = self.subscription;
        let ctx = Ctx {
            db: txn,
            message,
            operation: op,
        };
        let failed = |which: &str, e: BoxError| {
            callback_error(op, which, "the observer of", O::SUBSCRIPTIONS.get(sub), e)
        };
        match op.operation {
            OperationKind::Create | OperationKind::Update => {
                let attributes = op.attributes.as_ref().ok_or_else(|| no_attributes(op))?;
                let observed = O::from_operation(sub, &op.id, attributes)
                    .map_err(|e| attribute_error(op, e))?;
                if op.operation == OperationKind::Create {
                    observed
                        .after_create(&ctx)
                        .await
                        .map_err(|e| failed("after_create", e))
                } else {
                    observed
                        .after_update(&ctx)
                        .await
                        .map_err(|e| failed("after_update", e))
                }
            }
            OperationKind::Destroy => {
                let observed = O::destroyed(sub, &op.id).map_err(|e| attribute_error(op, e))?;
                observed
                    .after_destroy(&ctx)
                    .await
                    .map_err(|e| failed("after_destroy", e))
            }
        }
    }
}
