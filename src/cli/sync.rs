//! `publish <model> [filter]`: the initial sync. Every matching row is written to the outbox
//! as an update carrying all its published attributes (in batches, one transaction each), then
//! the relay publishes the outbox.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use promiscuous_sea_orm::Publisher;
use promiscuous_sea_orm::publisher::{Published, record_sync};
use promiscuous_sea_orm::tables::outbox;
use sea_orm::sea_query::Expr;
use sea_orm::{
    DatabaseConnection, EntityTrait, FromQueryResult, Iterable, ModelTrait, PaginatorTrait,
    PrimaryKeyToColumn, QueryFilter, QueryOrder, QuerySelect, Select, TransactionTrait,
};

use super::{CliError, Env, Out, PublishedModel};

#[derive(clap::Args, Debug)]
pub(crate) struct PublishArgs {
    /// The model: one of its endpoints (`crowdtap/user`) or its table (`users`).
    model: String,
    /// Only the rows matching this SQL condition (`"id > 100 AND name LIKE 'A%'"`).
    filter: Option<String>,
    /// Rows written to the outbox per transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
}

/// The rows of `M` matching `filter`, in primary-key order (stable across batches).
fn select<M>(filter: Option<&str>) -> Select<M::Entity>
where
    M: ModelTrait,
{
    let mut query = M::Entity::find();
    if let Some(filter) = filter {
        query = query.filter(Expr::cust(filter.to_string()));
    }
    for key in <M::Entity as EntityTrait>::PrimaryKey::iter() {
        query = query.order_by_asc(key.into_column());
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

/// Writes a sync update of every matching row to the outbox, `batch` rows per transaction.
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
    let failed = |doing: &str, done: u64, e: sea_orm::DbErr| {
        CliError::failed(format!(
            "{doing} the {} (after {done} rows synced, committed): {e}",
            which(&table, filter)
        ))
    };
    let mut done = 0u64;
    loop {
        let txn = db
            .begin()
            .await
            .map_err(|e| failed("beginning a transaction for", done, e))?;
        let rows = select::<M>(filter)
            .offset(done)
            .limit(batch)
            .all(&txn)
            .await
            .map_err(|e| failed("reading", done, e))?;
        let n = rows.len() as u64;
        for row in &rows {
            record_sync(row, &txn)
                .await
                .map_err(|e| failed("writing the outbox rows of", done, e))?;
        }
        txn.commit()
            .await
            .map_err(|e| failed("committing the outbox rows of", done, e))?;
        done += n;
        progress.inc(n);
        if n < batch {
            return Ok(done);
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

pub(crate) async fn run(env: &Env<'_>, args: &PublishArgs, out: &mut Out) -> Result<(), CliError> {
    let model = find(env, &args.model)?.clone();
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
    let Some((transport, broker)) = env.broker() else {
        out.line(
            "no --amqp-url (PROMISCUOUS_AMQP_URL): not relayed here; the application's relay \
             publishes the outbox",
        );
        return Ok(());
    };
    let outbox_rows = |db: DatabaseConnection| async move {
        outbox::Entity::find()
            .count(&db)
            .await
            .map_err(|e| CliError::failed(format!("counting the outbox rows: {e}")))
    };
    let before = outbox_rows(db.clone()).await?;
    let publisher = Publisher::with_transport(db.clone(), transport)
        .error_notifier(Arc::new(|e| eprintln!("promiscuous: {e}")))
        .start()
        .await
        .map_err(|e| CliError::failed(format!("starting the relay: {e}")))?;
    // `shutdown` flushes: everything committed so far is published, or it fails.
    publisher.shutdown().await.map_err(|e| {
        CliError::failed(format!(
            "relaying the outbox to {broker}: {e} (the rows stay in the outbox: the \
             application's relay, or this command run again, publishes them)"
        ))
    })?;
    let after = outbox_rows(db).await?;
    out.line(format!(
        "relayed {} message(s) to {broker}; {after} still pending",
        before.saturating_sub(after)
    ));
    Ok(())
}
