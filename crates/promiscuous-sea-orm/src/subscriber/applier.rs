//! The SeaORM applier ([`SeaOrmApplier`]): applies messages to the subscriber's database, one
//! transaction per message or batch, claiming each applied version before its effect, and
//! records the versions processed without effect.

use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use promiscuous_core::BoxError;
use promiscuous_core::subscriber::{
    Applied, Applier, ApplyError, At, DeadLetter, Failed, Feed, Rejected,
};
use promiscuous_core::{Message, Operation, OperationKind};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, UnionType};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, NotSet, QueryOrder, Set, TransactionTrait,
};

use super::claims::{Claims, claim_all};
use super::errors::{attribute_error, db_error, txn_error};
use super::preload::{self, Preloaded, handler_id};
use super::{Ctx, Observed, Subscribed, Subscription};
use crate::tables::{applied, dead_letters, processed};

/// Applies messages to a subscriber database: each message in one transaction, each operation
/// by upsert (create/update) or delete (destroy) of the rows of every model subscribed to its
/// endpoint, skipping versions already applied; the applied version is claimed first, in the
/// same transaction (`promiscuous_applied`), so a redelivered message has no second effect,
/// even when two workers apply it at once.
///
/// Versions processed without effect are recorded apart, in `promiscuous_processed`: those of
/// operations on endpoints nobody here follows (ignored: one statement per message or batch,
/// with its other writes) and those of dead-lettered messages (with the dead letter, in one
/// transaction). They count for causal waits ([`Applier::versions`] takes the greater of the
/// two), so messages depending on them do not wait, even after a restart, but not for
/// skipping: a replayed dead letter, or an instance whose endpoint is followed later, is still
/// applied when nothing newer was.
#[derive(Clone)]
pub struct SeaOrmApplier {
    db: DatabaseConnection,
    /// endpoint → what follows it, with the type it follows (if any).
    handlers: HashMap<&'static str, Vec<Registered>>,
    /// Replays check the recorded `user_id` too (see [`SeaOrmApplier::require_user_id`]).
    pub(crate) require_user_id: bool,
    /// Where applied operations go once committed (live streams), if anywhere.
    feed: Option<Arc<Feed>>,
}

impl SeaOrmApplier {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            handlers: HashMap::new(),
            require_user_id: false,
            feed: None,
        }
    }

    /// Publishes the operations it applies to `feed`, each once its transaction committed
    /// (see [`Feed`]).
    pub fn feed(mut self, feed: Arc<Feed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Publishes to the feed what committed: `applied` lists `(message, operation)` indices.
    fn committed(&self, messages: &[&Message], applied: &[(usize, usize)]) {
        if let Some(feed) = &self.feed {
            // One publication (one lock of the feed) per message, its operations in order.
            for group in applied.chunk_by(|a, b| a.0 == b.0) {
                let message = messages[group[0].0];
                feed.publish(
                    message,
                    group.iter().map(|&(_, op)| &message.operations[op]),
                );
            }
        }
    }

    /// Whether dead-letter replays admit a message only if the `user_id` recorded with it is
    /// its `app`, as the subscriber does with `Subscriber::require_user_id(true)` (which sets
    /// this). A replay always checks the recorded routing key.
    pub fn require_user_id(mut self, require: bool) -> Self {
        self.require_user_id = require;
        self
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

    /// The applied version of an instance (`"{endpoint}/{id}"`), if any: what was applied,
    /// not what was only ignored or dead-lettered (see [`SeaOrmApplier::processed_version`]).
    pub async fn applied_version(&self, key: &str) -> Result<Option<u64>, DbErr> {
        Ok(applied::Entity::find_by_id(key.to_string())
            .one(&self.db)
            .await?
            .map(|r| r.version as u64))
    }

    /// The processed version of an instance, if any: the greater of its applied version and
    /// the version recorded as processed without effect (ignored, dead-lettered). What causal
    /// waits compare dependencies with.
    pub async fn processed_version(&self, key: &str) -> Result<Option<u64>, DbErr> {
        let found = processed_versions(&self.db, &[key.to_string()]).await?;
        Ok(found.get(key).copied())
    }

    /// Applies `message` in `txn`; the versions of its ignored operations go to `ignored`, for
    /// the caller to record (one statement for the whole transaction).
    async fn apply_in(
        &self,
        txn: &DatabaseTransaction,
        message: &Message,
        prepared: &Prepared,
        ignored: &mut Vec<(String, u64)>,
        applied: &mut Vec<usize>,
    ) -> Result<Applied, ApplyError> {
        let mut outcome = Applied::default();
        for (index, op) in message.operations.iter().enumerate() {
            let handlers = self.handlers_for(op);
            if handlers.is_empty() {
                // Not followed: only processed, for the messages depending on it. Not claimed
                // as applied, so that following the endpoint later still applies the instance.
                ignored.push((op.key(), op.version));
                outcome.ignored += 1;
                continue;
            }
            if !prepared.claims.claim(txn, op).await? {
                outcome.skipped += 1;
                continue;
            }
            for h in handlers {
                let rows = prepared.rows.get(&handler_id(h));
                h.apply(txn, message, op, rows).await?;
            }
            outcome.applied += 1;
            if self.feed.is_some() {
                applied.push(index);
            }
        }
        Ok(outcome)
    }

    /// Claims the operations of `messages` in `txn` and reads the local rows of the claimed
    /// ones, each in one statement per model (see [`claims`](super::claims) and
    /// [`preload`](super::preload)).
    async fn prepare(
        &self,
        txn: &DatabaseTransaction,
        messages: &[&Message],
    ) -> Result<Prepared, ApplyError> {
        let claims = claim_all(txn, messages, |op| self.follows(op)).await?;
        let mut by_handler: HashMap<usize, (&Arc<dyn Handler>, Vec<&Operation>)> = HashMap::new();
        for op in messages.iter().flat_map(|m| m.operations.iter()) {
            if !claims.may_be_claimed(op) {
                continue;
            }
            for h in self.handlers_for(op) {
                by_handler
                    .entry(handler_id(h))
                    .or_insert((h, Vec::new()))
                    .1
                    .push(op);
            }
        }
        let mut rows = HashMap::new();
        for (id, (handler, ops)) in by_handler {
            // One operation finds its row itself: no gain.
            if ops.len() > 1
                && let Some(preloaded) = handler.preload(txn, &ops).await?
            {
                rows.insert(id, preloaded);
            }
        }
        Ok(Prepared { claims, rows })
    }

    /// Whether something here follows `op` (applies it).
    fn follows(&self, op: &Operation) -> bool {
        !self.handlers_for(op).is_empty()
    }

    /// Whether nothing here follows any operation of `message` (all ignored).
    fn ignores(&self, message: &Message) -> bool {
        message
            .operations
            .iter()
            .all(|op| self.handlers_for(op).is_empty())
    }
}

/// Raises the processed versions of `versions` (instance key, version) in
/// `promiscuous_processed`: one conditional upsert per 400 distinct keys (a version lower than
/// the recorded one changes nothing).
async fn record_processed<C: ConnectionTrait>(
    db: &C,
    versions: &[(String, u64)],
) -> Result<(), DbErr> {
    // One row per key (PostgreSQL refuses to upsert a row twice in one statement).
    let mut highest: HashMap<&str, u64> = HashMap::new();
    for (key, version) in versions {
        let v = highest.entry(key.as_str()).or_insert(0);
        *v = Ord::max(*v, *version);
    }
    let mut rows: Vec<(&str, u64)> = highest.into_iter().collect();
    rows.sort_unstable();
    let on_conflict = if db.get_database_backend() == DbBackend::MySql {
        // No `WHERE` in MySQL's `ON DUPLICATE KEY UPDATE`: the greater of the two.
        OnConflict::column(processed::Column::Key)
            .value(
                processed::Column::Version,
                Expr::cust("GREATEST(version, VALUES(version))"),
            )
            .to_owned()
    } else {
        OnConflict::column(processed::Column::Key)
            .update_column(processed::Column::Version)
            .action_and_where(
                Expr::col((processed::Entity, processed::Column::Version)).lt(Expr::col((
                    Alias::new("excluded"),
                    processed::Column::Version,
                ))),
            )
            .to_owned()
    };
    // Two bound parameters per row: well under SQLite's limit per statement.
    for chunk in rows.chunks(400) {
        let mut insert = Query::insert();
        insert
            .into_table(processed::Entity)
            .columns([processed::Column::Key, processed::Column::Version])
            .on_conflict(on_conflict.clone());
        for (key, version) in chunk {
            insert.values_panic([(*key).into(), (*version as i64).into()]);
        }
        db.execute(&insert).await?;
    }
    Ok(())
}

/// The processed version of each of `keys` that has one: the greater of its applied and its
/// processed-without-effect version (one query per 400 keys).
async fn processed_versions<C: ConnectionTrait>(
    db: &C,
    keys: &[String],
) -> Result<HashMap<String, u64>, DbErr> {
    let mut found: HashMap<String, u64> = HashMap::new();
    // Each key is bound twice: well under SQLite's limit of bound parameters per statement.
    for chunk in keys.chunks(400) {
        let mut select = Query::select();
        select
            .columns([applied::Column::Key, applied::Column::Version])
            .from(applied::Entity)
            .and_where(Expr::col(applied::Column::Key).is_in(chunk.iter().cloned()))
            .union(
                UnionType::All,
                Query::select()
                    .columns([processed::Column::Key, processed::Column::Version])
                    .from(processed::Entity)
                    .and_where(Expr::col(processed::Column::Key).is_in(chunk.iter().cloned()))
                    .to_owned(),
            );
        for row in db.query_all(&select).await? {
            let key: String = row.try_get("", "key")?;
            let version: i64 = row.try_get("", "version")?;
            let v = found.entry(key).or_insert(0);
            *v = Ord::max(*v, version as u64);
        }
    }
    Ok(found)
}

#[async_trait]
impl Applier for SeaOrmApplier {
    fn bindings(&self) -> Vec<String> {
        let apps: BTreeSet<String> = self
            .handlers
            .keys()
            .map(|e| promiscuous_core::message::endpoint::app(e).to_string())
            .collect();
        apps.into_iter().collect()
    }

    async fn apply(&self, message: &Message) -> Result<Applied, ApplyError> {
        if self.ignores(message) {
            // Nothing to apply: one statement, no transaction.
            let versions: Vec<(String, u64)> = message
                .operations
                .iter()
                .map(|op| (op.key(), op.version))
                .collect();
            record_processed(&self.db, &versions)
                .await
                .map_err(txn_error("recording ignored versions"))?;
            return Ok(Applied {
                ignored: versions.len(),
                ..Applied::default()
            });
        }
        let txn = self
            .db
            .begin()
            .await
            .map_err(txn_error("beginning a transaction"))?;
        let prepared = self.prepare(&txn, &[message]).await?;
        let (mut ignored, mut applied) = (Vec::new(), Vec::new());
        let outcome = self
            .apply_in(&txn, message, &prepared, &mut ignored, &mut applied)
            .await?;
        record_processed(&txn, &ignored)
            .await
            .map_err(txn_error("recording ignored versions"))?;
        txn.commit().await.map_err(txn_error("committing"))?;
        let applied: Vec<(usize, usize)> = applied.into_iter().map(|op| (0, op)).collect();
        self.committed(&[message], &applied);
        Ok(outcome)
    }

    fn batches(&self) -> bool {
        true
    }

    async fn apply_batch(&self, messages: &[&Message]) -> Option<Result<Vec<Applied>, ApplyError>> {
        Some(
            async {
                let txn = self
                    .db
                    .begin()
                    .await
                    .map_err(txn_error("beginning a transaction"))?;
                let prepared = self.prepare(&txn, messages).await?;
                let mut outcomes = Vec::with_capacity(messages.len());
                let (mut ignored, mut applied, mut ops) = (Vec::new(), Vec::new(), Vec::new());
                for (m, message) in messages.iter().enumerate() {
                    outcomes.push(
                        self.apply_in(&txn, message, &prepared, &mut ignored, &mut ops)
                            .await?,
                    );
                    applied.extend(ops.drain(..).map(|op| (m, op)));
                }
                record_processed(&txn, &ignored)
                    .await
                    .map_err(txn_error("recording ignored versions"))?;
                txn.commit().await.map_err(txn_error("committing"))?;
                self.committed(messages, &applied);
                Ok(outcomes)
            }
            .await,
        )
    }

    /// The greater of the applied (`promiscuous_applied`) and the processed-without-effect
    /// (`promiscuous_processed`) version of each key.
    async fn versions(&self, keys: &[String]) -> Result<Vec<u64>, BoxError> {
        let found = processed_versions(&self.db, keys).await?;
        Ok(keys
            .iter()
            .map(|k| found.get(k).copied().unwrap_or(0))
            .collect())
    }

    /// Inserts the dead letter and raises its versions in `promiscuous_processed`, in one
    /// transaction. PostgreSQL's text cannot hold a NUL: there a NUL in the letter's text (an
    /// error naming an id that holds one) is written `\u0000`, and a version whose key holds
    /// one is not recorded (no such instance can be stored here), so that the letter is stored
    /// rather than requeued forever.
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), BoxError> {
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        let text = |s: String| {
            if postgres && s.contains('\0') {
                s.replace('\0', "\\u0000")
            } else {
                s
            }
        };
        let versions: Vec<(String, u64)> = letter
            .versions
            .into_iter()
            .filter(|(key, _)| !(postgres && key.contains('\0')))
            .collect();
        let txn = self.db.begin().await?;
        dead_letters::ActiveModel {
            id: NotSet,
            queue: Set(text(letter.queue)),
            routing_key: Set(text(letter.routing_key)),
            user_id: Set(letter.user_id.map(text)),
            payload: Set(letter.payload),
            error: Set(text(letter.error)),
            attempts: Set(letter.attempts as i32),
            at_ms: Set(letter.at_ms),
        }
        .insert(&txn)
        .await?;
        record_processed(&txn, &versions).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// What a transaction's operations need before they are applied: which are claimed, and the
/// local rows read ahead, by handler.
struct Prepared {
    claims: Claims,
    rows: HashMap<usize, Preloaded>,
}

/// Applies the operations of one endpoint to one subscribed model.
#[async_trait]
trait Handler: Send + Sync {
    /// Reads ahead, in one query, what applying `ops` needs (see [`preload`]); `None`: nothing.
    async fn preload(
        &self,
        txn: &DatabaseTransaction,
        ops: &[&Operation],
    ) -> Result<Option<Preloaded>, ApplyError> {
        let _ = (txn, ops);
        Ok(None)
    }

    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        message: &Message,
        op: &Operation,
        preloaded: Option<&Preloaded>,
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
    which: &'static str,
    follower: &'static str,
    subscription: Option<&Subscription>,
    e: BoxError,
) -> ApplyError {
    ApplyError::Transient(Failed::Callback {
        at: At::of(op),
        callback: which,
        follower,
        endpoint: subscription.map_or("?", |s| s.from),
        source: e.into(),
    })
}

fn no_attributes(op: &Operation) -> ApplyError {
    ApplyError::Permanent(Rejected::NoAttributes { at: At::of(op) })
}

#[async_trait]
impl<M: Subscribed> Handler for ModelHandler<M> {
    async fn preload(
        &self,
        txn: &DatabaseTransaction,
        ops: &[&Operation],
    ) -> Result<Option<Preloaded>, ApplyError> {
        preload::read::<M>(txn, self.subscription, ops).await
    }

    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        message: &Message,
        op: &Operation,
        preloaded: Option<&Preloaded>,
    ) -> Result<(), ApplyError> {
        let sub = self.subscription;
        let ctx = Ctx {
            db: txn,
            message,
            operation: op,
        };
        let failed = |which: &'static str, e: BoxError| {
            callback_error(
                op,
                which,
                "the model following",
                M::SUBSCRIPTIONS.get(sub),
                e,
            )
        };
        let existing = match preload::take::<M>(preloaded, sub, op) {
            Some(found) => found,
            None => M::find_by_publisher_id(sub, &op.id)
                .map_err(|e| attribute_error(op, e))?
                .one(txn)
                .await
                .map_err(|e| db_error(op, "finding the local row", e))?,
        };
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
        _preloaded: Option<&Preloaded>,
    ) -> Result<(), ApplyError> {
        let sub = self.subscription;
        let ctx = Ctx {
            db: txn,
            message,
            operation: op,
        };
        let failed = |which: &'static str, e: BoxError| {
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
