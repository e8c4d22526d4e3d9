//! Called from the `ActiveModelBehavior` that `#[publish]` generates, inside the caller's
//! transaction: bump the instance's version and append the operation to the transaction's
//! message in the outbox, so the change and its message commit (or roll back) together.
//!
//! All published writes of one transaction to endpoints of one app make one message: its
//! header (a `promiscuous_outbox` row) is written with the transaction's first write to that app,
//! and each write adds one row to `promiscuous_outbox_operations`; the relay assembles them.
//! Writes to several apps in one transaction make one message per app, each atomic for its
//! subscribers (they follow apps, not transactions). How the hooks recognise the transaction:
//! [`transaction`](super::transaction).
//!
//! Each write costs two round trips besides the model's own statement: one before it (the write
//! permit, see [`guard`](super::guard)) and, after it, one query (the versions of the instance
//! and of the context's read dependencies, and this transaction's messages) and one batch of
//! statements (versions, outbox, permit withdrawn). The transaction's first write adds the
//! check that it runs inside a transaction. A delete adds two: before it, the row is read (locked
//! on PostgreSQL) and, after it, the permit looked up, so that a delete that removed nothing
//! publishes nothing ([`before_destroy`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use promiscuous_core::message::{self, PROTOCOL_VERSION, host_name, instance_key};
use promiscuous_core::publisher::context;
use promiscuous_core::{Dependencies, Dependency, Message, Operation, OperationKind, now_ms};
use sea_orm::sea_query::{Expr, Query, QueryStatementWriter};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait};
use serde_json::{Map, Value};

use super::sql::{Sql, SqlBatch};
use super::transaction::{self, LookupRow, Messages};
use super::{Endpoint, Published};
use crate::tables::{outbox, outbox_operations, versions};

/// Refuses a write to a published model outside a transaction: the outbox row must commit
/// atomically with the change, which SeaORM only guarantees when both run on one transaction.
/// The database tells (see [`transaction`](super::transaction)); nothing is written.
pub async fn require_transaction<C: ConnectionTrait>(db: &C, endpoint: &str) -> Result<(), DbErr> {
    transaction::enter(db, endpoint, None).await
}

/// What the generated `before_save`/`before_delete` run: refuse a write outside a transaction,
/// then let this transaction change one row of `table` (see [`guard`](super::guard)).
pub async fn before_write<C: ConnectionTrait>(
    db: &C,
    endpoint: &str,
    table: &str,
) -> Result<(), DbErr> {
    let permit = super::guard::guarded(db.get_database_backend()).then_some(table);
    transaction::enter(db, endpoint, permit).await
}

fn custom(endpoint: &str, what: &str, e: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("promiscuous: {endpoint}: {what}: {e}"))
}

/// Records an insert (`insert == true`) or an update of `model`, on each of its endpoints. An
/// update that changes no attribute published to an endpoint publishes nothing there.
///
/// `table` is the model's table: its write permit (see [`before_write`]) is withdrawn in the same
/// round trip as the versions and outbox writes.
pub async fn record_save<M: Published, C: ConnectionTrait>(
    model: &M,
    db: &C,
    insert: bool,
    table: &str,
) -> Result<(), DbErr> {
    let kind = if insert {
        OperationKind::Create
    } else {
        OperationKind::Update
    };
    let id = publisher_id(model)?;
    let mut writes = Writes::begin::<M, C>(db, &id).await?;
    record_each(model, &id, &mut writes, kind, State::Keep)?;
    writes.release(table);
    writes.send(db).await
}

/// Records `kind` of `model`, with all its published attributes, on each of its endpoints.
fn record_each<M: Published>(
    model: &M,
    id: &Value,
    writes: &mut Writes,
    kind: OperationKind,
    state: State,
) -> Result<(), DbErr> {
    for (n, endpoint) in M::ENDPOINTS.iter().enumerate() {
        let attributes = model
            .published_attributes(n)
            .map_err(|e| custom(endpoint.endpoint, "serializing published attributes", e))?;
        for (name, value) in &attributes {
            let depth = nesting(value);
            if depth > MAX_ATTRIBUTE_NESTING {
                return Err(DbErr::Custom(format!(
                    "promiscuous: published attribute `{name}` of `{}` is nested {depth} \
                     levels deep; at most {MAX_ATTRIBUTE_NESTING} can be published (a message \
                     is JSON nested at most 128 levels deep, docs/PROTOCOL.md): nothing was \
                     written",
                    endpoint.endpoint
                )));
            }
        }
        writes.record(endpoint, id, kind, Some(attributes), state)?;
    }
    Ok(())
}

/// How deep a published attribute's value may nest arrays and objects: the message around it
/// (up to 5 levels, for an update's `changes`) must stay within the 128 levels every
/// subscriber's JSON parser reads.
pub const MAX_ATTRIBUTE_NESTING: usize = 100;

/// Levels of arrays and objects in `value` (0 for a scalar).
fn nesting(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// What the generated `before_delete` runs after [`before_write`]: whether the row `model`
/// names still exists, read in the caller's transaction (locked `FOR UPDATE` on PostgreSQL and
/// MySQL, so
/// a concurrent transaction deleting it commits first). A row already gone (deleted by another
/// transaction meanwhile, or before a stale model is deleted) makes SeaORM's delete remove
/// nothing: the permit is withdrawn now, and [`record_destroy`] then publishes nothing for it —
/// no destroy of an instance that was already destroyed, at a version of its own.
pub async fn before_destroy<A, C>(model: &A, db: &C, table: &str) -> Result<(), DbErr>
where
    A: sea_orm::ActiveModelTrait + Sync,
    C: ConnectionTrait,
{
    use sea_orm::{Iterable, PrimaryKeyToColumn, QueryFilter, QuerySelect};
    let backend = db.get_database_backend();
    let Some(release) = super::guard::release_sql(backend, table) else {
        return Ok(());
    };
    // Without a key value `after_delete` refuses the delete itself.
    let (false, Some(key)) = (db.is_mock_connection(), model.get_primary_key_value()) else {
        return Ok(());
    };
    let mut select = <A::Entity as EntityTrait>::find();
    for (column, value) in <A::Entity as EntityTrait>::PrimaryKey::iter().zip(key) {
        select = select.filter(column.into_column().eq(value));
    }
    if backend != DbBackend::Sqlite {
        select = select.lock_exclusive();
    }
    if select.one(db).await?.is_none() {
        db.execute_unprepared(&release).await?;
    }
    Ok(())
}

/// Whether this transaction holds a write permit for `table` (always, where there is no guard).
async fn holds_permit<C: ConnectionTrait>(db: &C, table: &str) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    if db.is_mock_connection() || !super::guard::guarded(backend) {
        return Ok(true);
    }
    let sql = format!(
        "SELECT 1 AS held FROM {} WHERE tbl = {}",
        super::guard::PERMITS,
        super::guard::quoted(backend, table)
    );
    let stmt = sea_orm::Statement::from_string(backend, sql);
    Ok(db.query_one_raw(stmt).await?.is_some())
}

/// Records the destruction of the instance `id` of `M`, on each of its endpoints, and withdraws
/// the write permit of `table`; nothing if the row was already gone (see [`before_destroy`]).
pub async fn record_destroy<M: Published, C: ConnectionTrait>(
    id: Value,
    db: &C,
    table: &str,
) -> Result<(), DbErr> {
    if !holds_permit(db, table).await? {
        return Ok(());
    }
    let mut writes = Writes::begin::<M, C>(db, &id).await?;
    for endpoint in M::ENDPOINTS {
        writes.record(endpoint, &id, OperationKind::Destroy, None, State::Forget)?;
    }
    writes.release(table);
    writes.send(db).await
}

/// Publishes an ephemeral: a create of `model` on each of its endpoints, at the instance's next
/// version, in the caller's transaction's message. Nothing else is stored.
pub async fn record_ephemeral<M: Published, C: ConnectionTrait>(
    model: &M,
    db: &C,
) -> Result<(), DbErr> {
    record_without_row(model, db, OperationKind::Create, State::Forget).await
}

/// An operation no model row write precedes (an ephemeral, a sync): the transaction is checked
/// here, and no write permit is involved.
async fn record_without_row<M: Published, C: ConnectionTrait>(
    model: &M,
    db: &C,
    kind: OperationKind,
    state: State,
) -> Result<(), DbErr> {
    let first = M::ENDPOINTS.first().map_or("?", |e| e.endpoint);
    require_transaction(db, first).await?;
    let id = publisher_id(model)?;
    let mut writes = Writes::begin::<M, C>(db, &id).await?;
    record_each(model, &id, &mut writes, kind, state)?;
    writes.send(db).await
}

/// Records an update of `model` carrying every attribute published to each of its endpoints,
/// even when nothing changed since the last published state: the initial sync
/// (`promiscuous publish <model>`) of rows written before a subscriber (or promiscuous) existed.
/// Like every write, run it inside a transaction, after locking the row (the CLI's `publish`
/// does: `SELECT … FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so that the state
/// sent is the row's current one. The update is flagged `sync` (a subscriber that never had the
/// instance applies it without waiting for the previous version, which it never received; one
/// that has it waits like for any update) and carries no `changes`; the next regular update
/// computes its `changes` against what it sent.
pub async fn record_sync<M: Published, C: ConnectionTrait>(model: &M, db: &C) -> Result<(), DbErr> {
    record_without_row(model, db, OperationKind::Update, State::Resend).await
}

fn publisher_id<M: Published>(model: &M) -> Result<Value, DbErr> {
    let first = M::ENDPOINTS.first().map_or("?", |e| e.endpoint);
    model
        .publisher_id()
        .map_err(|e| custom(first, "serializing the primary key", e))
}

/// How [`Writes::record`] treats the instance's last published state.
#[derive(Clone, Copy, PartialEq)]
enum State {
    /// A model's write: the published attributes are kept to compute the `changes` of the next
    /// update, and an update that changes nothing publishes nothing.
    Keep,
    /// A destroy or an ephemeral: nothing is kept.
    Forget,
    /// An initial sync: always published, flagged `sync`, and kept like a write.
    Resend,
}

/// Most dependencies one operation row (and so one message) lists: a larger set is split over
/// checkpoint messages (see [`Writes::checkpoints`]). 1,000 dependencies take about 45 KB.
pub const DEPENDENCY_BUDGET: usize = 1000;

/// The endpoint (under the app) of checkpoint operations.
pub const CHECKPOINT_MODEL: &str = "promiscuous_checkpoint";

/// A row of `promiscuous_versions` as the hooks read it.
#[derive(Clone)]
struct Stored {
    version: u64,
    attributes: Option<String>,
    message: Option<String>,
}

/// A write of this batch, remembered by the causal context once the batch ran.
struct Written {
    app: String,
    key: String,
    version: u64,
    message: String,
    /// Its dependencies before reduction (lowered to committed versions).
    all: Vec<Dependency>,
}

/// One published write in the making: what it read first (versions, dependencies, this
/// transaction's messages), then the statements that end it (versions, outbox, the write
/// permit), sent to the database in one round trip (a [`SqlBatch`]).
struct Writes {
    backend: DbBackend,
    /// Not a mock connection: the write guard's permit is withdrawn.
    guarded: bool,
    /// The versions rows of the instances written and of the context's dependencies.
    stored: HashMap<String, Stored>,
    /// This transaction's messages, by app.
    messages: Messages,
    /// Apps whose message this batch starts, with the message's id.
    starting: HashMap<String, String>,
    /// The causal context's dependencies, by app written.
    needs: HashMap<String, context::Needs>,
    batch: SqlBatch,
    written: Vec<Written>,
}

impl Writes {
    /// Reads, in one query, what the write of instance `id` of `M` needs.
    async fn begin<M: Published, C: ConnectionTrait>(db: &C, id: &Value) -> Result<Self, DbErr> {
        let backend = db.get_database_backend();
        let mut needs = HashMap::new();
        let mut keys: Vec<String> = Vec::new();
        for endpoint in M::ENDPOINTS {
            keys.push(instance_key(endpoint.endpoint, id));
            let app = app_of(endpoint.endpoint);
            if !needs.contains_key(app) {
                let n = context::dependencies(app);
                keys.extend(n.all.iter().map(|d| d.key.clone()));
                keys.extend(n.anchor.iter().map(|(a, _)| a.key.clone()));
                needs.insert(app.to_string(), n);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let first = M::ENDPOINTS.first().map_or("?", |e| e.endpoint);
        let rows = lookup(db, &keys)
            .await
            .map_err(|e| custom(first, "reading versions", e))?;
        let mut stored = HashMap::new();
        let mut rest = Vec::new();
        for row in rows {
            let key: Option<String> = row.try_get("", "key")?;
            let version: Option<i64> = row.try_get("", "version")?;
            let attributes: Option<String> = row.try_get("", "attributes")?;
            let message: Option<String> = row.try_get("", "message")?;
            match key {
                Some(key) => {
                    let version = version.unwrap_or(0) as u64;
                    stored.insert(
                        key,
                        Stored {
                            version,
                            attributes,
                            message,
                        },
                    );
                }
                None => rest.push(LookupRow {
                    version,
                    attributes,
                    nonce: row.try_get("", "nonce")?,
                    message,
                }),
            }
        }
        let messages = transaction::read_lookup(backend, rest)?;
        Ok(Self {
            backend,
            guarded: !db.is_mock_connection(),
            stored,
            messages,
            starting: HashMap::new(),
            needs,
            batch: SqlBatch::new(backend),
            written: Vec::new(),
        })
    }

    fn push(&mut self, statement: &impl QueryStatementWriter) {
        self.batch.push(statement);
    }

    fn push_sql(&mut self, sql: Sql) {
        self.batch.push_sql(sql);
    }

    /// Bumps the version of `id` on `endpoint` and appends the operation to this transaction's
    /// message for the endpoint's app.
    fn record(
        &mut self,
        endpoint: &Endpoint,
        id: &Value,
        kind: OperationKind,
        attributes: Option<Map<String, Value>>,
        state: State,
    ) -> Result<(), DbErr> {
        let name = endpoint.endpoint;
        let key = instance_key(name, id);
        let previous = self.stored.get(&key).cloned();
        let before: Option<Map<String, Value>> =
            match previous.as_ref().and_then(|p| p.attributes.as_deref()) {
                Some(text) if state == State::Keep => Some(
                    serde_json::from_str(text)
                        .map_err(|e| custom(name, "reading last published attributes", e))?,
                ),
                _ => None,
            };
        let changes = match (kind, before, &attributes) {
            (OperationKind::Update, Some(before), Some(after)) => {
                let changes = message::changes(&before, after);
                if changes.is_empty() {
                    return Ok(());
                }
                Some(changes)
            }
            _ => None,
        };
        let stored = match (&attributes, state) {
            (Some(a), State::Keep | State::Resend) => {
                Some(serde_json::to_string(a).map_err(|e| custom(name, "encoding", e))?)
            }
            _ => None,
        };
        let app = app_of(name).to_string();
        // Before this write changes what `stored` says of its instance.
        let verified = self.anchor_verified(&app);
        let (outbox_id, message) = self.message_for(&app)?;
        let version = previous.as_ref().map_or(1, |p| p.version + 1);
        self.bump(previous.is_some(), &key, version, stored.clone(), &message)?;
        self.stored.insert(
            key.clone(),
            Stored {
                version,
                attributes: stored,
                message: Some(message.clone()),
            },
        );
        let op = Operation {
            endpoint: name.to_string(),
            types: endpoint.types.iter().map(|t| t.to_string()).collect(),
            id: id.clone(),
            operation: kind,
            version,
            attributes,
            changes,
            sync: state == State::Resend,
        };
        self.append(op, &app, key, outbox_id, message, verified)
    }

    /// Whether the causal context's last message to `app` committed (or is the one being
    /// written): its instance is still at its version, written by that message.
    fn anchor_verified(&self, app: &str) -> bool {
        let anchor = self.needs.get(app).and_then(|n| n.anchor.as_ref());
        anchor.is_some_and(|(anchor, _)| {
            self.stored.get(&anchor.key).is_some_and(|s| {
                s.version == anchor.version && s.message.as_deref() == Some(&anchor.message)
            })
        })
    }

    /// Stores the instance's `version` (an insert for a new instance), published in `message`.
    fn bump(
        &mut self,
        existing: bool,
        key: &str,
        version: u64,
        attributes: Option<String>,
        message: &str,
    ) -> Result<(), DbErr> {
        let invalid = |e: sea_orm::sea_query::error::Error| DbErr::Custom(e.to_string());
        if existing {
            let mut update = Query::update();
            update
                .table(versions::Entity)
                .values([
                    (versions::Column::Version, (version as i64).into()),
                    (versions::Column::Attributes, attributes.into()),
                    (versions::Column::Message, message.into()),
                ])
                .and_where(versions::Column::Key.eq(key));
            self.push(&update);
        } else {
            let mut insert = Query::insert();
            insert
                .into_table(versions::Entity)
                .columns([
                    versions::Column::Key,
                    versions::Column::Version,
                    versions::Column::Attributes,
                    versions::Column::Message,
                ])
                .values([
                    key.into(),
                    (version as i64).into(),
                    attributes.into(),
                    message.into(),
                ])
                .map_err(invalid)?;
            self.push(&insert);
        }
        Ok(())
    }

    /// Keeps dependencies to versions that were committed: the context also remembers writes
    /// whose transaction was rolled back, and a dependency on such a version would make
    /// subscribers wait for a message that may never exist. Each dependency is lowered to the
    /// instance's version in this database (dropped if it has none); `key` itself is left out.
    fn committed(&self, all: &[Dependency], key: &str) -> Vec<Dependency> {
        all.iter()
            .filter(|d| d.key != key)
            .filter_map(|d| {
                let have = self.stored.get(&d.key)?.version;
                Some(Dependency {
                    version: d.version.min(have),
                    key: d.key.clone(),
                })
            })
            .collect()
    }

    /// The outbox row (an SQL expression) and the id of this transaction's message for `app`,
    /// starting it (its header row) if this is the app's first write in the transaction.
    fn message_for(&mut self, app: &str) -> Result<(Expr, String), DbErr> {
        if let Some((id, message)) = self.messages.get(app) {
            return Ok((Expr::val(id), message.to_string()));
        }
        let message = match self.starting.get(app) {
            Some(message) => message.clone(),
            None => {
                let message = uuid::Uuid::new_v4().to_string();
                let insert = self.header(app, &message)?;
                let sql = transaction::start_message_sql(
                    self.backend,
                    insert,
                    app,
                    &message,
                    &self.messages,
                );
                self.push_sql(sql);
                self.starting.insert(app.to_string(), message.clone());
                message
            }
        };
        let expr = transaction::message_id_expr(self.backend, app, &self.messages);
        Ok((expr, message))
    }

    /// The `INSERT` of a message header for `app` (no operations: they are rows of
    /// `promiscuous_outbox_operations`).
    fn header(&self, app: &str, message: &str) -> Result<Sql, DbErr> {
        let current_user_id = self.needs.get(app).and_then(|n| n.current_user_id.clone());
        let header = Message {
            protocol: PROTOCOL_VERSION,
            app: app.to_string(),
            id: message.to_string(),
            timestamp: now_ms(),
            host: host().to_string(),
            current_user_id,
            dependencies: Dependencies::default(),
            operations: Vec::new(),
        };
        let payload = String::from_utf8(header.encode()).expect("JSON is UTF-8");
        let mut insert = Query::insert();
        insert
            .into_table(outbox::Entity)
            .columns([
                outbox::Column::RoutingKey,
                outbox::Column::Payload,
                outbox::Column::CreatedAtMs,
            ])
            .values([app.into(), payload.into(), header.timestamp.into()])
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        Ok(Sql::build(self.backend, &insert))
    }

    /// The `INSERT` of one operation row into the message at `outbox_id` (an SQL expression).
    fn operation_row(
        &self,
        op: &Operation,
        outbox_id: Expr,
        reads: &[Dependency],
    ) -> Result<Sql, DbErr> {
        let encode = |e: serde_json::Error| custom(&op.endpoint, "encoding", e);
        let operation = serde_json::to_string(op).map_err(encode)?;
        let reads = if reads.is_empty() {
            None
        } else {
            Some(serde_json::to_string(reads).map_err(encode)?)
        };
        let mut insert = Query::insert();
        insert
            .into_table(outbox_operations::Entity)
            .columns([
                outbox_operations::Column::OutboxId,
                outbox_operations::Column::Operation,
                outbox_operations::Column::Reads,
            ])
            .values([outbox_id, operation.into(), reads.into()])
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        Ok(Sql::build(self.backend, &insert))
    }

    /// Appends `op` to the message at `outbox_id` with the dependencies it must carry: those
    /// of the causal context that its last message to `app` does not already imply (see
    /// [`context::reduce`]), the reduction being applied only if that message is `verified`.
    fn append(
        &mut self,
        op: Operation,
        app: &str,
        key: String,
        outbox_id: Expr,
        message: String,
        verified: bool,
    ) -> Result<(), DbErr> {
        let needs = self.needs.get(app).cloned().unwrap_or_default();
        let all = self.committed(&needs.all, &key);
        let mut carried = context::reduce(
            &all,
            needs.anchor.as_ref(),
            verified,
            needs.unsound_reduction,
        );
        if carried.len() > DEPENDENCY_BUDGET {
            carried = self.checkpoints(app, carried)?;
        }
        let row = self.operation_row(&op, outbox_id, &carried)?;
        self.push_sql(row);
        self.written.push(Written {
            app: app.to_string(),
            key,
            version: op.version,
            message,
            all,
        });
        Ok(())
    }

    /// Splits `dependencies` over checkpoint messages of `app`, each with one operation on a
    /// fresh instance of `{app}/promiscuous_checkpoint` (version 1, 2, …) carrying at most
    /// [`DEPENDENCY_BUDGET`] of them; returns the one dependency that replaces them all: the
    /// last checkpoint (each version waits for the previous one, so all of them).
    fn checkpoints(
        &mut self,
        app: &str,
        dependencies: Vec<Dependency>,
    ) -> Result<Vec<Dependency>, DbErr> {
        let endpoint = format!("{app}/{CHECKPOINT_MODEL}");
        let id = Value::String(uuid::Uuid::new_v4().to_string());
        let mut version = 0;
        for chunk in dependencies.chunks(DEPENDENCY_BUDGET) {
            version += 1;
            let op = Operation {
                endpoint: endpoint.clone(),
                types: vec!["PromiscuousCheckpoint".to_string()],
                id: id.clone(),
                operation: if version == 1 {
                    OperationKind::Create
                } else {
                    OperationKind::Update
                },
                version,
                attributes: Some(Map::new()),
                changes: None,
                sync: false,
            };
            let header = self.header(app, &uuid::Uuid::new_v4().to_string())?;
            let sql = match self.backend {
                DbBackend::Postgres => Sql::raw("WITH m AS (").then("", header).then(
                    " RETURNING id) ",
                    self.operation_row(&op, Expr::cust("(SELECT id FROM m)"), chunk)?,
                ),
                DbBackend::MySql => header.then(
                    "; ",
                    self.operation_row(&op, Expr::cust("LAST_INSERT_ID()"), chunk)?,
                ),
                _ => header.then(
                    "; ",
                    self.operation_row(&op, Expr::cust("last_insert_rowid()"), chunk)?,
                ),
            };
            self.push_sql(sql);
        }
        Ok(vec![Dependency {
            key: instance_key(&endpoint, &id),
            version,
        }])
    }

    /// Withdraws the write permit of `table` (see [`guard`](super::guard)).
    fn release(&mut self, table: &str) {
        if !self.guarded {
            return;
        }
        if let Some(sql) = super::guard::release_sql(self.backend, table) {
            self.batch.push_text(sql);
        }
    }

    /// Runs the statements, in order, in one round trip; remembers the writes in the causal
    /// context and wakes the relay if an operation was added.
    async fn send<C: ConnectionTrait>(self, db: &C) -> Result<(), DbErr> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.batch.run(db).await {
            if self.backend == DbBackend::MySql && self.guarded {
                // MySQL/MariaDB leaves the transaction usable (the batch itself was undone):
                // the session's write permits go too, so that none outlives the write.
                let withdraw = format!("DELETE FROM {}", super::guard::PERMITS);
                if let Err(undo) = db.execute_unprepared(&withdraw).await {
                    tracing::warn!(error = %undo, "promiscuous: withdrawing the write permits");
                }
            }
            return Err(e);
        }
        for w in &self.written {
            tracing::debug!(
                target: "promiscuous::publish",
                message = %w.message,
                key = %w.key,
                version = w.version,
                dependencies = w.all.len(),
                "published write recorded in the outbox"
            );
            context::remember_write(&w.app, &w.key, w.version, &w.message, &w.all);
        }
        if !self.written.is_empty() {
            super::wake::outbox_written(db).await;
        }
        Ok(())
    }
}

/// Runs [`transaction::lookup_statement`]. On SQLite, a connection whose temporary tables were
/// rolled back with a savepoint gets them again. On MySQL/MariaDB the versions found are read
/// again, locked ([`mysql_latest`]).
async fn lookup<C: ConnectionTrait>(
    db: &C,
    keys: &[String],
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    let backend = db.get_database_backend();
    let stmt = || transaction::lookup_statement(backend, keys);
    match db.query_all_raw(stmt()).await {
        Err(e) if backend == DbBackend::Sqlite && e.to_string().contains("no such table") => {
            db.execute_unprepared(transaction::SQLITE_TABLES).await?;
            db.query_all_raw(stmt()).await
        }
        Ok(rows) if backend == DbBackend::MySql && !db.is_mock_connection() => {
            mysql_latest(db, rows).await
        }
        other => other,
    }
}

/// MySQL/MariaDB: InnoDB's plain reads see the transaction's snapshot (REPEATABLE READ, the
/// default, takes it at the transaction's first read), so a version committed since (by a
/// writer of the same instance, whose row lock this transaction then waited for) would be
/// missed and its number published twice. A locking read sees the latest committed row: the
/// versions found are read again `LOCK IN SHARE MODE` (in key order, which is the index's),
/// which also keeps them until this transaction ends. Only rows found are locked: a locking
/// read of a missing key would lock the gap, and two transactions creating instances in the
/// same gap would deadlock. A version created after the snapshot of an instance this
/// transaction then writes makes its insert fail (a duplicate key), never publish twice.
async fn mysql_latest<C: ConnectionTrait>(
    db: &C,
    rows: Vec<sea_orm::QueryResult>,
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    use sea_orm::{QueryFilter, QueryOrder, QuerySelect, QueryTrait};
    let mut found = Vec::new();
    let mut rest = Vec::new();
    for row in rows {
        match row.try_get::<Option<String>>("", "key")? {
            Some(key) => found.push(key),
            None => rest.push(row),
        }
    }
    if found.is_empty() {
        return Ok(rest);
    }
    let select = versions::Entity::find()
        .select_only()
        .column(versions::Column::Key)
        .column(versions::Column::Version)
        .column(versions::Column::Attributes)
        .column_as(Expr::cust("NULL"), "nonce")
        .column(versions::Column::Message)
        .filter(versions::Column::Key.is_in(found))
        .order_by_asc(versions::Column::Key)
        .lock_shared()
        .build(DbBackend::MySql);
    let mut latest = db.query_all_raw(select).await?;
    latest.extend(rest);
    Ok(latest)
}

fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(host_name)
}

/// The publishing application: the first segment of the endpoint.
fn app_of(endpoint: &str) -> &str {
    message::endpoint::app(endpoint)
}

/// Records, in the current `promiscuous::context`, that `model` was read at its current
/// published version: the context's later writes will depend on it. Outside a context, or for
/// an instance never published, nothing happens.
pub async fn track_read<M: Published, C: ConnectionTrait>(model: &M, db: &C) -> Result<(), DbErr> {
    if !context::in_context() {
        return Ok(());
    }
    let id = publisher_id(model)?;
    for endpoint in M::ENDPOINTS {
        let key = instance_key(endpoint.endpoint, &id);
        if let Some(row) = versions::Entity::find_by_id(key.clone()).one(db).await? {
            context::record_read(&key, row.version as u64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_is_the_first_segment() {
        assert_eq!(app_of("crowdtap/user"), "crowdtap");
        assert_eq!(app_of("solo"), "solo");
    }
}
