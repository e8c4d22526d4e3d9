//! `status`: the subscriber queue's depth, the dead letters and, on a publisher's database, the
//! outbox (its pending rows and the age of the oldest: the relay's lag).

use promiscuous_core::{Report, now_ms};
use promiscuous_sea_orm::subscriber::dead_letters;
use promiscuous_sea_orm::tables::{dead_letters as dead_letter_rows, outbox};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait, QueryOrder};

use crate::env::{Env, Out, redact};
use crate::error::CliError;

fn age(at_ms: i64) -> String {
    let ms = (now_ms() - at_ms).max(0);
    format!("{:.1} s", ms as f64 / 1000.0)
}

pub(crate) async fn run(env: &Env<'_>, out: &mut Out) -> Result<(), CliError> {
    let app = env.app();
    let mut failures = Vec::new();
    match env.broker() {
        None => out.line(format!(
            "queue {app}: depth unknown (no --amqp-url / PROMISCUOUS_AMQP_URL; an in-process \
             broker lives only inside its process)"
        )),
        Some((transport, broker)) => match transport.queue_depth(app).await {
            Ok(Some(n)) => out.line(format!(
                "queue {app}: {n} message(s) ready on {broker} (not counting deliveries in \
                 flight)"
            )),
            Ok(None) => out.line(format!("queue {app}: depth unknown ({broker} cannot tell)")),
            Err(e) => failures.push(format!("queue {app} on {broker}: {}", Report(&e))),
        },
    }
    match &env.connections.database_url {
        None => out.line("database: none given (--database-url / DATABASE_URL)"),
        Some(url) => {
            let db = env.database().await?;
            out.line(format!("database: {}", redact(url)));
            database(&db, out).await;
        }
    }
    match &env.connections.redis_url {
        Some(url) => match board(env, url, app).await {
            Ok(lines) => lines.into_iter().for_each(|l| out.line(l)),
            Err(e) => failures.push(e),
        },
        None => out.line(
            "workers and lag: no --redis-url (running workers report them to the board in \
             Redis, and as the promiscuous_lag_seconds metric); the relay's lag is the age of \
             the oldest pending outbox row, above on a publisher's database",
        ),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::failed(failures.join("; ")))
    }
}

/// What the database holds: dead letters (a subscriber's), the outbox (a publisher's). A
/// table that cannot be read is reported as absent, with the database's reason.
async fn database(db: &DatabaseConnection, out: &mut Out) {
    let letters = dead_letters::count(db).await;
    let newest = dead_letter_rows::Entity::find()
        .order_by_desc(dead_letter_rows::Column::Id)
        .one(db)
        .await;
    match (letters, newest) {
        (Ok(n), Ok(Some(newest))) => out.line(format!(
            "dead letters: {n} (newest #{}, {} ago; see `dead-letters list`)",
            newest.id,
            age(newest.at_ms)
        )),
        (Ok(_), Ok(None)) => out.line("dead letters: 0"),
        (Err(e), _) | (_, Err(e)) => out.line(format!(
            "dead letters: none readable (not a subscriber's database? {e})"
        )),
    }
    let pending = outbox::Entity::find().count(db).await;
    let oldest = outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .one(db)
        .await;
    match (pending, oldest) {
        (Ok(n), Ok(Some(oldest))) => out.line(format!(
            "outbox: {n} row(s) pending; relay lag: {} (oldest pending row)",
            age(oldest.created_at_ms)
        )),
        (Ok(_), Ok(None)) => out.line("outbox: 0 rows pending; relay lag: none"),
        (Err(e), _) | (_, Err(e)) => out.line(format!(
            "outbox: none readable (not a publisher's database? {e})"
        )),
    }
}

/// What the app's workers reported to the board in Redis: one line each, with their lag.
async fn board(env: &Env<'_>, url: &str, app: &str) -> Result<Vec<String>, String> {
    use promiscuous_core::board::{Board, Worker};
    let board =
        promiscuous_core::redis::RedisBoard::new(env.redis(url).map_err(|e| e.to_string())?);
    let reports = board
        .reports()
        .await
        .map_err(|e| format!("the board in Redis at {}: {}", redact(url), e.report()))?;
    let mut lines = Vec::new();
    for r in reports.iter().filter(|r| r.app == app) {
        if let Worker::Subscriber(s) = &r.worker {
            let lag = s.lag_ms.map_or("unknown".to_string(), |ms| {
                format!("{:.1} s", ms as f64 / 1000.0)
            });
            lines.push(format!(
                "worker {} pid {}: lag {lag}, {} processed, {} waiting, {} in flight{}",
                r.host,
                r.pid,
                s.messages,
                s.waiting_count,
                s.in_flight,
                if s.connected { "" } else { ", disconnected" }
            ));
        }
    }
    if lines.is_empty() {
        lines.push(format!(
            "workers: none of {app} reports to the board in Redis now"
        ));
    }
    Ok(lines)
}
