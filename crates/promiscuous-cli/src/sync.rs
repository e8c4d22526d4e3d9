//! `publish <model> [filter]`: the initial sync. Every matching row is written to the outbox
//! as an update carrying all its published attributes (in batches, one transaction each), then
//! left to the application's relay, or relayed here when told that no other relay runs
//! (`--relay`) or given the application's lease (`--lease`).
//!
//! The application may write the same rows meanwhile, so each batch reads its rows and versions
//! them atomically: in one transaction that holds the rows (PostgreSQL, MariaDB: `SELECT … FOR UPDATE`;
//! SQLite: the write lock, taken before reading), so no write can commit between the read and
//! the sync's version. A row deleted meanwhile is not read, hence not resent. Batches page by
//! primary key (`WHERE key > last ORDER BY key LIMIT batch`), so rows deleted or inserted
//! between batches never make the sync skip a row.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use promiscuous_core::publisher::Lease;
use promiscuous_core::redis::RedisLease;
use promiscuous_sea_orm::Publisher;
use promiscuous_sea_orm::publisher::{Published, record_sync};
use promiscuous_sea_orm::tables::outbox;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    FromQueryResult, IsolationLevel, Iterable, ModelTrait, PaginatorTrait, PrimaryKeyToColumn,
    QueryFilter, QueryOrder, QuerySelect, Select, SqliteTransactionMode, TransactionOptions,
    TransactionTrait, Value,
};

use crate::env::{Env, Out, PublishedModel};
use crate::error::CliError;

#[derive(clap::Args, Debug)]
pub(crate) struct PublishArgs {
    /// The model: one of its endpoints (`crowdtap/user`) or its table (`users`).
    model: String,
    /// Only the rows matching this SQL condition (`"id > 100 AND name LIKE 'A%'"`).
    filter: Option<String>,
    /// Rows written to the outbox per transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
    /// Also relay the outbox from here (needs a broker: --amqp-url). Only when no other relay
    /// runs on this outbox (the application is stopped or runs none): two relays on one outbox
    /// publish rows twice and out of order. Without --relay or --lease the rows are left to the
    /// application's relay.
    #[arg(long, conflicts_with = "lease")]
    relay: bool,
    /// Relay from here under the application's relay lease of this name (the name its
    /// `RedisLease` was given; needs --redis-url and a broker): the rows are published only while
    /// this command holds the lease, and left to the application's relay while that holds it.
    #[arg(long, value_name = "NAME")]
    lease: Option<String>,
}

/// How long the lease taken with `--lease` lasts after each renewal (the relay renews it at
/// every batch).
const LEASE_TTL: Duration = Duration::from_secs(10);

/// Attempts of one batch when the database reports a deadlock, a serialization failure or a
/// busy SQLite database (the application's transactions lock the same rows).
const BATCH_ATTEMPTS: u32 = 5;

/// The rows of `M` matching `filter`.
fn select<M>(filter: Option<&str>) -> Select<M::Entity>
where
    M: ModelTrait,
{
    let mut query = M::Entity::find();
    if let Some(filter) = filter {
        // Parenthesized: the filter may contain OR, and the key condition is ANDed to it.
        query = query.filter(Expr::cust(format!("({filter})")));
    }
    query
}

fn table_of<M: ModelTrait>() -> String {
    use sea_orm::EntityName;
    M::Entity::default().table_name().to_string()
}

fn which(table: &str, filter: Option<&str>) -> String {
    match filter {
        Some(f) => format!("rows of {table} matching `{f}`"),
        None => format!("rows of {table}"),
    }
}

/// The model's primary key column: the sync pages by it, so it must be a single column
/// (`#[publish]` already refuses other models at compile time; a hand-written `Published` model
/// with a composite key gets this error rather than a sync that pages wrongly).
fn key_column<M: ModelTrait>() -> Result<<M::Entity as EntityTrait>::Column, CliError> {
    let columns: Vec<<M::Entity as EntityTrait>::Column> =
        <M::Entity as EntityTrait>::PrimaryKey::iter()
            .map(|k| k.into_column())
            .collect();
    match columns.as_slice() {
        [one] => Ok(*one),
        _ => {
            let names: Vec<String> = columns
                .iter()
                .map(|c| sea_orm::IdenStatic::as_str(c).to_string())
                .collect();
            Err(CliError::failed(format!(
                "cannot sync {}: the initial sync pages by the primary key and needs a \
                 single-column one; its key has {} columns ({})",
                table_of::<M>(),
                columns.len(),
                names.join(", ")
            )))
        }
    }
}

pub(crate) async fn count<M>(db: &DatabaseConnection, filter: Option<&str>) -> Result<u64, CliError>
where
    M: Published + ModelTrait + FromQueryResult,
    M::Entity: EntityTrait<Model = M>,
{
    select::<M>(filter).count(db).await.map_err(|e| {
        CliError::failed(format!(
            "counting the {}: {e}",
            which(&table_of::<M>(), filter)
        ))
    })
}

/// Begins a batch's transaction so that what it reads cannot change before it commits.
///
/// - PostgreSQL and MariaDB: READ COMMITTED, stated rather than inherited from the server's
///   default, because the batch's rows are read `FOR UPDATE`, which returns their latest
///   committed state and holds them; every later statement of the transaction (the version
///   lookup of `record_sync`) then sees the versions committed with that state. Under a
///   snapshot isolation the version lookup could read an older snapshot than the locked rows.
/// - SQLite: `BEGIN IMMEDIATE`, the database's write lock taken before the first read. SQLite
///   has one writer at a time but, in a deferred transaction, readers do not block writers: a
///   transaction that read a row before another connection committed a change to it would then
///   write the stale state (or, in WAL mode, fail with SQLITE_BUSY_SNAPSHOT when it tries to
///   write). Taking the write lock first means no other connection commits between the read and
///   the commit, without retrying; the application's writers wait (busy timeout) for one batch.
async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            db.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
        }
        _ => {
            db.begin_with_config(Some(IsolationLevel::ReadCommitted), None)
                .await
        }
    }
}

/// Whether a batch that failed with `e` may simply be tried again: the database gave up on a
/// lock (a deadlock with the application's transactions, a serialization failure, a busy
/// SQLite database). Its transaction was rolled back, so nothing of it was written.
fn retryable(e: &DbErr) -> bool {
    let text = e.to_string().to_lowercase();
    [
        "deadlock",
        "could not serialize",
        "database is locked",
        "database table is locked",
    ]
    .iter()
    .any(|t| text.contains(t))
}

/// What one batch did: rows synced and the key of the last one.
struct Batch {
    rows: u64,
    last: Option<Value>,
}

/// One batch: reads the next `batch` rows after `last` (in key order), held until the commit,
/// and writes a sync update of each. On failure, what it was doing and the error (the
/// transaction is rolled back).
async fn one_batch<M>(
    db: &DatabaseConnection,
    filter: Option<&str>,
    key: <M::Entity as EntityTrait>::Column,
    last: Option<&Value>,
    batch: u64,
) -> Result<Batch, (&'static str, DbErr)>
where
    M: Published + ModelTrait + FromQueryResult,
    M::Entity: EntityTrait<Model = M>,
{
    let txn = begin(db)
        .await
        .map_err(|e| ("beginning a transaction for", e))?;
    let work = async {
        let mut query = select::<M>(filter);
        if let Some(last) = last {
            query = query.filter(key.gt(last.clone()));
        }
        query = query.order_by_asc(key).limit(batch);
        if db.get_database_backend() != DbBackend::Sqlite {
            // The rows are held until the commit; a row deleted meanwhile is not returned
            // (under READ COMMITTED, a row whose writer commits its deletion while we wait is
            // skipped), and LIMIT counts the rows returned.
            query = query.lock_exclusive();
        }
        let rows = query.all(&txn).await.map_err(|e| ("reading", e))?;
        for row in &rows {
            record_sync(row, &txn)
                .await
                .map_err(|e| ("writing the outbox rows of", e))?;
        }
        Ok::<_, (&'static str, DbErr)>(rows)
    };
    let rows = match work.await {
        Ok(rows) => rows,
        Err(e) => {
            let _ = txn.rollback().await;
            return Err(e);
        }
    };
    txn.commit()
        .await
        .map_err(|e| ("committing the outbox rows of", e))?;
    Ok(Batch {
        rows: rows.len() as u64,
        // Ordered by key: the last row has the greatest (a key changed while we waited for its
        // lock could break the order; primary keys are not updated in practice).
        last: rows.last().map(|r| r.get(key)),
    })
}

/// Writes a sync update of every matching row to the outbox, `batch` rows per transaction, in
/// primary-key order. Returns how many rows were synced (rows deleted meanwhile are not).
pub(crate) async fn sync<M>(
    db: &DatabaseConnection,
    filter: Option<&str>,
    batch: u64,
    progress: &ProgressBar,
) -> Result<u64, CliError>
where
    M: Published + ModelTrait + FromQueryResult,
    M::Entity: EntityTrait<Model = M>,
{
    let table = table_of::<M>();
    let key = key_column::<M>()?;
    let mut done = 0u64;
    let mut last: Option<Value> = None;
    loop {
        let mut attempt = 1;
        let outcome = loop {
            match one_batch::<M>(db, filter, key, last.as_ref(), batch).await {
                Err((_, e)) if attempt < BATCH_ATTEMPTS && retryable(&e) => {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                    attempt += 1;
                }
                other => break other,
            }
        };
        let outcome = outcome.map_err(|(doing, e)| {
            CliError::failed(format!(
                "{doing} the {} (after {done} rows synced, committed): {e}",
                which(&table, filter)
            ))
        })?;
        done += outcome.rows;
        progress.inc(outcome.rows);
        match outcome.last {
            Some(key) if outcome.rows == batch => last = Some(key),
            _ => return Ok(done),
        }
    }
}

fn find<'a>(env: &'a Env<'_>, name: &str) -> Result<&'a PublishedModel, CliError> {
    let known = env.published();
    if known.is_empty() {
        return Err(CliError::failed(format!(
            "unknown model `{name}`: this program publishes no model (register models with \
             Cli::publish::<Model>())"
        )));
    }
    known
        .iter()
        .find(|m| m.table == name || m.endpoints.iter().any(|e| e.endpoint == name))
        .ok_or_else(|| {
            let names: Vec<String> = known.iter().map(PublishedModel::describe).collect();
            CliError::failed(format!(
                "unknown model `{name}`: name one of its endpoints or its table; this program \
                 publishes {}",
                names.join("; ")
            ))
        })
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Where the rows written go: left to the application's relay, or relayed from here.
enum Relaying {
    Left,
    /// `--relay`: no other relay runs on this outbox.
    Alone(Arc<dyn promiscuous_core::transport::Transport>, String),
    /// `--lease NAME`: under the application's lease.
    Leased(
        Arc<dyn promiscuous_core::transport::Transport>,
        String,
        Arc<RedisLease>,
        String,
    ),
}

/// Checks the relay options before anything is written.
fn relaying(env: &Env<'_>, args: &PublishArgs) -> Result<Relaying, CliError> {
    if !args.relay && args.lease.is_none() {
        return Ok(Relaying::Left);
    }
    let option = if args.relay { "--relay" } else { "--lease" };
    let Some((transport, broker)) = env.broker() else {
        return Err(CliError::failed(format!(
            "{option} relays to a broker: pass --amqp-url or set PROMISCUOUS_AMQP_URL"
        )));
    };
    let Some(name) = &args.lease else {
        return Ok(Relaying::Alone(transport, broker));
    };
    let Some(url) = &env.connections.redis_url else {
        return Err(CliError::failed(
            "--lease takes the application's lease in Redis: pass --redis-url or set \
             PROMISCUOUS_REDIS_URL",
        ));
    };
    let redis = env.redis(url)?;
    let lease = Arc::new(RedisLease::new(redis, name, LEASE_TTL));
    Ok(Relaying::Leased(transport, broker, lease, name.clone()))
}

pub(crate) async fn run(env: &Env<'_>, args: &PublishArgs, out: &mut Out) -> Result<(), CliError> {
    let model = find(env, &args.model)?.clone();
    let relaying = relaying(env, args)?;
    let filter = args.filter.as_deref();
    let db = env.database().await?;
    promiscuous_sea_orm::schema::setup_publisher(&db)
        .await
        .map_err(|e| CliError::failed(format!("creating the publisher tables: {e}")))?;
    let total = (model.count)(&db, filter).await?;
    let progress = progress_bar(total);
    progress.set_message(format!("syncing {}", model.table));
    let synced = (model.sync)(&db, filter, args.batch, &progress).await;
    progress.finish_and_clear();
    let synced = synced?;
    let endpoints: Vec<&str> = model.endpoints.iter().map(|e| e.endpoint).collect();
    out.line(format!(
        "synced {synced} {}: {synced} update(s) per endpoint ({}) written to the outbox",
        which(&model.table, filter),
        endpoints.join(", ")
    ));
    let (transport, broker, lease) = match relaying {
        Relaying::Left => {
            out.line(
                "not relayed here: the application's relay publishes the outbox (--relay if no \
                 relay runs on it, --lease NAME to relay under the application's lease)",
            );
            return Ok(());
        }
        Relaying::Alone(transport, broker) => (transport, broker, None),
        Relaying::Leased(transport, broker, lease, name) => {
            let held = lease.hold().await.map_err(|e| {
                CliError::failed(format!(
                    "taking the lease `{name}`: {e} (the rows stay in the outbox for the \
                     application's relay)"
                ))
            })?;
            if !held {
                out.line(format!(
                    "not relayed here: another relay (the application's) holds the lease \
                     `{name}` and publishes the outbox"
                ));
                return Ok(());
            }
            (transport, broker, Some(lease))
        }
    };
    let outbox_rows = |db: DatabaseConnection| async move {
        outbox::Entity::find()
            .count(&db)
            .await
            .map_err(|e| CliError::failed(format!("counting the outbox rows: {e}")))
    };
    let before = outbox_rows(db.clone()).await?;
    let mut publisher = Publisher::with_transport(db.clone(), transport)
        .error_notifier(Arc::new(|e| eprintln!("promiscuous: {}", e.report())));
    if let Some(lease) = &lease {
        publisher = publisher.lease(lease.clone());
    }
    let publisher = publisher
        .start()
        .await
        .map_err(|e| CliError::failed(format!("starting the relay: {}", e.report())))?;
    // `shutdown` flushes: everything committed so far is published (while the lease, if any, is
    // held), or it fails; the lease is then released.
    publisher.shutdown().await.map_err(|e| {
        CliError::failed(format!(
            "relaying the outbox to {broker}: {} (the rows stay in the outbox: the \
             application's relay, or this command run again, publishes them)",
            e.report()
        ))
    })?;
    let after = outbox_rows(db).await?;
    let rest = if after > 0 && lease.is_some() {
        " (written since, or left once the lease was no longer held: the application's relay \
         publishes them)"
    } else {
        ""
    };
    out.line(format!(
        "relayed {} message(s) to {broker}; {after} still pending{rest}",
        before.saturating_sub(after)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_conflicts_are_retried_and_nothing_else() {
        let err = |m: &str| DbErr::Custom(m.to_string());
        assert!(retryable(&err(
            "error returned from database: deadlock detected"
        )));
        assert!(retryable(&err(
            "could not serialize access due to concurrent update"
        )));
        assert!(retryable(&err("(code: 5) database is locked")));
        assert!(!retryable(&err("no such column: nope")));
    }
}
