//! Called from the `ActiveModelBehavior` that `#[publish]` generates, inside the caller's
//! transaction: bump the instance's version and append the encoded message to the outbox, so
//! the change and its message commit (or roll back) together.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use promiscuous_core::message::{PROTOCOL_VERSION, host_name, instance_key};
use promiscuous_core::publisher::{context, wake};
use promiscuous_core::{
    Change, Dependencies, Dependency, Message, Operation, OperationKind, now_ms,
};
use sea_orm::sea_query::{
    MysqlQueryBuilder, PostgresQueryBuilder, Query, QueryStatementWriter, SqliteQueryBuilder,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter};
use serde_json::{Map, Value};

use super::{Endpoint, Published};
use crate::tables::{outbox, versions};

/// Refuses a write to a published model outside a transaction: the outbox row must commit
/// atomically with the change, which SeaORM only guarantees when both run on one transaction.
pub fn require_transaction<C: ConnectionTrait>(db: &C, endpoint: &str) -> Result<(), DbErr> {
    // SeaORM's hooks are generic over the connection and expose no "in transaction" flag; the
    // connection's type tells (`DatabaseTransaction`, or a wrapper around one).
    if std::any::type_name::<C>().contains("DatabaseTransaction") || db.is_mock_connection() {
        return Ok(());
    }
    Err(DbErr::Custom(format!(
        "promiscuous: a write to published model `{endpoint}` must run inside a transaction \
         (`let txn = db.begin().await?; ...; txn.commit().await?` or `db.transaction(...)`), so \
         that its outbox row commits atomically with the change"
    )))
}

/// What the generated `before_save`/`before_delete` run: refuse a write outside a transaction,
/// then let this transaction change one row of `table` (see [`guard`](super::guard)).
pub async fn before_write<C: ConnectionTrait>(
    db: &C,
    endpoint: &str,
    table: &str,
) -> Result<(), DbErr> {
    require_transaction(db, endpoint)?;
    super::guard::permit(db, table).await
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
    let mut writes = Writes::new(db);
    record_each(model, db, &mut writes, kind, State::Keep).await?;
    writes.release(table);
    writes.send(db).await
}

/// Records `kind` of `model`, with all its published attributes, on each of its endpoints.
async fn record_each<M: Published, C: ConnectionTrait>(
    model: &M,
    db: &C,
    writes: &mut Writes,
    kind: OperationKind,
    state: State,
) -> Result<(), DbErr> {
    let id = publisher_id(model)?;
    for (n, endpoint) in M::ENDPOINTS.iter().enumerate() {
        let attributes = model
            .published_attributes(n)
            .map_err(|e| custom(endpoint.endpoint, "serializing published attributes", e))?;
        record(db, writes, endpoint, &id, kind, Some(attributes), state).await?;
    }
    Ok(())
}

/// Records the destruction of the instance `id` of `M`, on each of its endpoints, and withdraws
/// the write permit of `table`.
pub async fn record_destroy<M: Published, C: ConnectionTrait>(
    id: Value,
    db: &C,
    table: &str,
) -> Result<(), DbErr> {
    let mut writes = Writes::new(db);
    for endpoint in M::ENDPOINTS {
        record(
            db,
            &mut writes,
            endpoint,
            &id,
            OperationKind::Destroy,
            None,
            State::Forget,
        )
        .await?;
    }
    writes.release(table);
    writes.send(db).await
}

/// Publishes an ephemeral: a create of `model` on each of its endpoints, at the instance's next
/// version, written to the outbox in the caller's transaction. Nothing else is stored.
pub async fn record_ephemeral<M: Published, C: ConnectionTrait>(
    model: &M,
    db: &C,
) -> Result<(), DbErr> {
    let first = M::ENDPOINTS.first().map_or("ephemeral", |e| e.endpoint);
    require_transaction(db, first)?;
    let mut writes = Writes::new(db);
    record_each(model, db, &mut writes, OperationKind::Create, State::Forget).await?;
    writes.send(db).await
}

fn publisher_id<M: Published>(model: &M) -> Result<Value, DbErr> {
    let first = M::ENDPOINTS.first().map_or("?", |e| e.endpoint);
    model
        .publisher_id()
        .map_err(|e| custom(first, "serializing the primary key", e))
}

/// How [`record`] treats the instance's last published state.
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

/// Bumps the version of `id` on `endpoint` and appends the operation to the outbox.
async fn record<C: ConnectionTrait>(
    db: &C,
    writes: &mut Writes,
    endpoint: &Endpoint,
    id: &Value,
    kind: OperationKind,
    attributes: Option<Map<String, Value>>,
    state: State,
) -> Result<(), DbErr> {
    let keep_state = state == State::Keep;
    let name = endpoint.endpoint;
    let key = instance_key(name, id);
    let previous = versions::Entity::find_by_id(key.clone()).one(db).await?;
    let before: Option<Map<String, Value>> =
        match previous.as_ref().and_then(|p| p.attributes.as_deref()) {
            Some(text) if keep_state => Some(
                serde_json::from_str(text)
                    .map_err(|e| custom(name, "reading last published attributes", e))?,
            ),
            _ => None,
        };
    let changes = match (kind, before, &attributes) {
        (OperationKind::Update, Some(before), Some(after)) => {
            let changes = diff(&before, after);
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
    let version = writes.bump(previous, key, stored)?;
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
    append(db, writes, op).await
}

/// The attributes whose value changed, before and after.
fn diff(before: &Map<String, Value>, after: &Map<String, Value>) -> BTreeMap<String, Change> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| {
            let change = Change {
                before: before.get(k).cloned().unwrap_or(Value::Null),
                after: v.clone(),
            };
            (k.clone(), change)
        })
        .collect()
}

/// The statements that end a write (versions, outbox, the write permit), sent to the database
/// in one round trip: each round trip costs about as much as the statement itself on SQLite.
/// Values are written into the SQL by sea-query's builder for the connection's backend.
struct Writes {
    backend: DbBackend,
    /// Not a mock connection: the write guard's permit is withdrawn.
    guarded: bool,
    statements: Vec<String>,
    outbox_rows: usize,
}

impl Writes {
    fn new<C: ConnectionTrait>(db: &C) -> Self {
        Self {
            backend: db.get_database_backend(),
            guarded: !db.is_mock_connection(),
            statements: Vec::new(),
            outbox_rows: 0,
        }
    }

    fn push(&mut self, statement: &impl QueryStatementWriter) {
        let sql = match self.backend {
            DbBackend::Postgres => statement.to_string(PostgresQueryBuilder),
            DbBackend::MySql => statement.to_string(MysqlQueryBuilder),
            _ => statement.to_string(SqliteQueryBuilder),
        };
        self.statements.push(sql);
    }

    /// Stores the instance's next version (1 for a new instance) and returns it.
    fn bump(
        &mut self,
        previous: Option<versions::Model>,
        key: String,
        attributes: Option<String>,
    ) -> Result<u64, DbErr> {
        let invalid = |e: sea_orm::sea_query::error::Error| DbErr::Custom(e.to_string());
        match previous {
            None => {
                let mut insert = Query::insert();
                insert
                    .into_table(versions::Entity)
                    .columns([
                        versions::Column::Key,
                        versions::Column::Version,
                        versions::Column::Attributes,
                    ])
                    .values([key.into(), 1i64.into(), attributes.into()])
                    .map_err(invalid)?;
                self.push(&insert);
                Ok(1)
            }
            Some(p) => {
                let version = p.version + 1;
                let mut update = Query::update();
                update
                    .table(versions::Entity)
                    .values([
                        (versions::Column::Version, version.into()),
                        (versions::Column::Attributes, attributes.into()),
                    ])
                    .and_where(versions::Column::Key.eq(p.key));
                self.push(&update);
                Ok(version as u64)
            }
        }
    }

    /// Appends an encoded message to the outbox.
    fn outbox(
        &mut self,
        routing_key: String,
        payload: String,
        created_at_ms: i64,
    ) -> Result<(), DbErr> {
        let mut insert = Query::insert();
        insert
            .into_table(outbox::Entity)
            .columns([
                outbox::Column::RoutingKey,
                outbox::Column::Payload,
                outbox::Column::CreatedAtMs,
            ])
            .values([routing_key.into(), payload.into(), created_at_ms.into()])
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        self.push(&insert);
        self.outbox_rows += 1;
        Ok(())
    }

    /// Withdraws the write permit of `table` (see [`guard`](super::guard)).
    fn release(&mut self, table: &str) {
        if !self.guarded {
            return;
        }
        if let Some(sql) = super::guard::release_sql(self.backend, table) {
            self.statements.push(sql);
        }
    }

    /// Runs the statements, in order, in one round trip; wakes the relay if a message was added.
    async fn send<C: ConnectionTrait>(self, db: &C) -> Result<(), DbErr> {
        if self.statements.is_empty() {
            return Ok(());
        }
        db.execute_unprepared(&self.statements.join(";\n")).await?;
        if self.outbox_rows > 0 {
            wake::outbox_written();
        }
        Ok(())
    }
}

fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(host_name)
}

/// The publishing application: the first segment of the endpoint.
fn app_of(endpoint: &str) -> &str {
    endpoint.split('/').next().unwrap_or(endpoint)
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

/// Keeps read dependencies to versions that were committed: the context also remembers writes
/// whose transaction was rolled back, and a dependency on such a version would make subscribers
/// wait for a message that may never exist. Each dependency is lowered to the instance's
/// version in this database (dropped if it has none), one query for all of them.
async fn committed<C: ConnectionTrait>(
    db: &C,
    reads: Vec<Dependency>,
) -> Result<Vec<Dependency>, DbErr> {
    if reads.is_empty() {
        return Ok(reads);
    }
    let mut stored: HashMap<String, u64> = HashMap::new();
    let keys: Vec<String> = reads.iter().map(|d| d.key.clone()).collect();
    // Well under SQLite's limit of bound parameters per statement.
    for chunk in keys.chunks(500) {
        let rows = versions::Entity::find()
            .filter(versions::Column::Key.is_in(chunk.iter().cloned()))
            .all(db)
            .await?;
        stored.extend(rows.into_iter().map(|r| (r.key, r.version as u64)));
    }
    Ok(reads
        .into_iter()
        .filter_map(|d| {
            let have = *stored.get(&d.key)?;
            Some(Dependency {
                version: d.version.min(have),
                key: d.key,
            })
        })
        .collect())
}

async fn append<C: ConnectionTrait>(
    db: &C,
    writes: &mut Writes,
    op: Operation,
) -> Result<(), DbErr> {
    let app = app_of(&op.endpoint).to_string();
    let (read, current_user_id) = context::record_write(&op.key(), op.version);
    let read = committed(db, read).await?;
    let message = Message {
        protocol: PROTOCOL_VERSION,
        app: app.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        timestamp: now_ms(),
        host: host().to_string(),
        current_user_id,
        dependencies: Dependencies {
            read,
            write: vec![Dependency {
                key: op.key(),
                version: op.version,
            }],
        },
        operations: vec![op],
    };
    let payload = String::from_utf8(message.encode()).expect("JSON is UTF-8");
    writes.outbox(app, payload, message.timestamp)
}

/// Records an update of `model` carrying every attribute published to each of its endpoints,
/// even when nothing changed since the last published state: the initial sync
/// (`promiscuous publish <model>`) of rows written before a subscriber (or promiscuous) existed.
/// Like every write, run it inside a transaction. The update is flagged `sync` (subscribers apply
/// it without waiting for the previous version, which one deployed later never received) and
/// carries no `changes`; the next regular update computes its `changes` against what it sent.
pub async fn record_sync<M: Published, C: ConnectionTrait>(model: &M, db: &C) -> Result<(), DbErr> {
    let first = M::ENDPOINTS.first().map_or("?", |e| e.endpoint);
    require_transaction(db, first)?;
    let mut writes = Writes::new(db);
    record_each(model, db, &mut writes, OperationKind::Update, State::Resend).await?;
    writes.send(db).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_only_changed_attributes() {
        let before = json!({"name": "Yoda", "email": "y@d"})
            .as_object()
            .unwrap()
            .clone();
        let after = json!({"name": "Luke", "email": "y@d"})
            .as_object()
            .unwrap()
            .clone();
        let d = diff(&before, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d["name"].before, json!("Yoda"));
        assert_eq!(d["name"].after, json!("Luke"));
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn app_is_the_first_segment() {
        assert_eq!(app_of("crowdtap/user"), "crowdtap");
        assert_eq!(app_of("solo"), "solo");
    }
}
